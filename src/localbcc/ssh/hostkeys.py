"""Per-instance SSH host keys: ed25519, generated once when the instance is
created, stored with it (private part as the 32-byte seed in hex), so the
fingerprint a client pins never changes across server restarts.

Only ``cryptography`` is used here: every process renders fingerprints, but
only the process serving SSH needs asyncssh.
"""
from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519


def fingerprint_sha256(blob: bytes) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -l`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_line(key: ed25519.Ed25519PrivateKey) -> str:
    """The public key in OpenSSH one-line form, ``ssh-ed25519 AAAA...``."""
    return key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()


def blob_of(line: str) -> bytes:
    """The wire blob of a one-line OpenSSH public key (its base64 field)."""
    return base64.b64decode(line.split()[1])


def new_host_key() -> dict[str, str]:
    """A fresh host key, as the instance columns that store it."""
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    line = public_line(key)
    return {"ssh_host_key": seed.hex(), "ssh_host_public_key": line,
            "ssh_host_fingerprint": fingerprint_sha256(blob_of(line))}


def private_openssh(seed_hex: str) -> bytes:
    """The stored seed as an OpenSSH private key file (what asyncssh imports)."""
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption())
