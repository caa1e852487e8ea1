"""Per-instance SSH host keys: ed25519, generated once when the instance is
created (domain/keys.py ``new_host_key``: the domain creates instances),
stored with it (private part as the 32-byte seed in hex), so the fingerprint a
client pins never changes across server restarts.

Only ``cryptography`` is used here: every process renders fingerprints, but
only the process serving SSH needs asyncssh.
"""
from __future__ import annotations

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519

from ..domain.keys import blob_of, fingerprint_sha256, new_host_key, public_line

__all__ = ["blob_of", "fingerprint_sha256", "new_host_key", "private_openssh", "public_line"]


def private_openssh(seed_hex: str) -> bytes:
    """The stored seed as an OpenSSH private key file (what asyncssh imports)."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption())
