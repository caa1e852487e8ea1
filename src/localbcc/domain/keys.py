"""SSH public keys: parsing, normalising and fingerprinting (spec §4.2, §4.3).

:func:`parse_public_key` accepts exactly one public key in OpenSSH one-line,
RFC 4716 or PEM (SPKI / PKCS#1) form and returns it in OpenSSH one-line form.
Anything else raises ``BceError(PublicKeyFormatInvalid)``.

Decisions:

* ``authorized_keys`` option prefixes (``command="..." ssh-rsa ...``) are
  rejected: the first word must be a supported key type.
* The key parts must be ASCII; a comment may hold any printable text and is
  kept with its whitespace runs collapsed to single spaces. A comment that
  itself contains another key blob counts as "two keys" and is rejected.
* ``ssh-rsa`` moduli must be odd and of 1024 to 16384 bits, as OpenSSH
  requires: a key no SSH client or server could use is refused at import.
* ``ssh-dss`` blobs are decoded here (cryptography deprecates SSH DSA and
  warns on every use) and validated through ``DSAPublicNumbers``, which only
  admits 1024/2048/3072/4096-bit ``p``.
* A blob must be canonical: re-encoding the parsed key must give the same
  bytes, so trailing data or odd encodings are rejected.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from localbcc.errors import BceError, ErrorCode

MAX_INPUT_BYTES = 16 * 1024
#: RSA moduli OpenSSH can use: sshkey.c refuses fewer than 1024 bits
#: (SSH_RSA_MINIMUM_MODULUS_SIZE) and more than 16384 (SSHBUF_MAX_BIGNUM), and an
#: even modulus is no RSA key at all. A key OpenSSH would refuse is refused here.
MIN_RSA_BITS = 1024
MAX_RSA_BITS = 16384
SUPPORTED_TYPES = frozenset(
    {
        "ssh-rsa",
        "ssh-dss",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "ssh-ed25519",
    }
)

_RFC4716_BEGIN = "---- BEGIN SSH2 PUBLIC KEY ----"
_RFC4716_END = "---- END SSH2 PUBLIC KEY ----"
_PEM_LABELS = ("PUBLIC KEY", "RSA PUBLIC KEY")
_EC_CURVES = {"secp256r1", "secp384r1", "secp521r1"}
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_TYPE_WORD_RE = re.compile(rb"[a-z0-9][a-z0-9@.\-]*")
_LOADER_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error, struct.error,
                  NotImplementedError)  # cryptography: "Need uncompressed point" (ECDSA)


@dataclass(frozen=True)
class PublicKey:
    """A validated SSH public key, normalised to OpenSSH one-line form."""

    openssh: str
    key_type: str
    blob: bytes
    fingerprint: str
    bits: int


def _invalid() -> BceError:
    return BceError(ErrorCode.PublicKeyFormatInvalid)


def fingerprint_md5(blob: bytes) -> str:
    """MD5 of ``blob`` as colon-separated lowercase hex pairs (``ssh-keygen -E md5``)."""
    return ":".join(f"{b:02x}" for b in hashlib.md5(blob).digest())


def parse_public_key(text: str) -> PublicKey:
    """Parse exactly one public key in any accepted form; see the module docstring."""
    if not isinstance(text, str) or len(text) > MAX_INPUT_BYTES:
        raise _invalid()
    if len(text.encode("utf-8", "replace")) > MAX_INPUT_BYTES:
        raise _invalid()
    text = text.strip()
    try:
        if text.startswith(_RFC4716_BEGIN):
            blob, comment = _unwrap_rfc4716(text)
            return _from_blob(blob, comment)
        if text.startswith("-----BEGIN "):
            return _from_blob(_pem_to_blob(text), None)
        return _parse_openssh_line(text)
    except _LOADER_ERRORS as exc:
        raise _invalid() from exc


def generate_rsa_keypair(comment: str | None = None) -> tuple[PublicKey, str]:
    """Create an RSA 2048 (e=65537) pair: the public key and an unencrypted PKCS#1 PEM.

    ``comment`` follows the same rules as an imported key's comment (BceError otherwise).
    """
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")
    line = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode("ascii")
    return parse_public_key(f"{line} {comment}" if comment else line), pem


# --- instance host keys --------------------------------------------------------
# Every instance gets an ed25519 host key when it is created, stored with it
# (the private part as the 32-byte seed in hex), so the fingerprint a client
# pins never changes across server restarts (docs/ssh.md; localbcc.ssh.hostkeys
# turns the seed into the key its SSH endpoint serves).


def fingerprint_sha256(blob: bytes) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -l`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_line(key: ed25519.Ed25519PrivateKey) -> str:
    """The public key in OpenSSH one-line form, ``ssh-ed25519 AAAA...``."""
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH).decode()


def blob_of(line: str) -> bytes:
    """The wire blob of a one-line OpenSSH public key (its base64 field)."""
    return base64.b64decode(line.split()[1])


def new_host_key() -> dict[str, str]:
    """A fresh host key, as the instance columns that store it."""
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    line = public_line(key)
    return {"ssh_host_key": seed.hex(), "ssh_host_public_key": line,
            "ssh_host_fingerprint": fingerprint_sha256(blob_of(line))}


# --- envelopes ---------------------------------------------------------------


def _parse_openssh_line(text: str) -> PublicKey:
    """``<type> <base64> [comment]`` on a single line."""
    if not text or "\n" in text or "\r" in text:
        raise _invalid()
    words = text.split()
    if len(words) < 2 or words[0] not in SUPPORTED_TYPES:
        raise _invalid()
    comment = " ".join(words[2:]) or None
    if comment is not None and (
        not comment.isprintable() or any(_looks_like_blob(w) for w in words[2:])
    ):
        raise _invalid()
    return _from_blob(_b64decode(words[1]), comment, declared_type=words[0])


def _unwrap_rfc4716(text: str) -> tuple[bytes, str | None]:
    """Return (blob, Comment header) from an RFC 4716 envelope."""
    lines = [line.strip() for line in text.splitlines()]
    if len(lines) < 3 or lines[0] != _RFC4716_BEGIN or lines[-1] != _RFC4716_END:
        raise _invalid()
    body = lines[1:-1]
    comment: str | None = None
    while body and ":" in body[0]:
        header = body.pop(0)
        while header.endswith("\\"):
            if not body:
                raise _invalid()
            header = header[:-1] + body.pop(0)
        tag, _, value = header.partition(":")
        if tag.strip().lower() == "comment":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            comment = " ".join(value.split()) or None
    if comment is not None and not comment.isprintable():
        raise _invalid()
    return _b64decode("".join(body)), comment


def _pem_to_blob(text: str) -> bytes:
    """SSH wire blob of a single PEM public key (SPKI or PKCS#1 RSA)."""
    label = next((lb for lb in _PEM_LABELS if text.startswith(f"-----BEGIN {lb}-----")), None)
    if label is None or text.count("-----BEGIN") != 1 or not text.endswith(f"-----END {label}-----"):
        raise _invalid()
    key = serialization.load_pem_public_key(text.encode("ascii"))
    if isinstance(key, dsa.DSAPublicKey):
        n = key.public_numbers()
        p = n.parameter_numbers
        return _ssh_string(b"ssh-dss") + b"".join(_mpint(v) for v in (p.p, p.q, p.g, n.y))
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        raise _invalid()
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in _EC_CURVES:
        raise _invalid()
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return _b64decode(line.split()[1].decode("ascii"))


# --- blob ------------------------------------------------------------------


def _from_blob(blob: bytes, comment: str | None, declared_type: str | None = None) -> PublicKey:
    """Validate a wire blob and build the :class:`PublicKey`."""
    key_type = _read_string(blob, 0)[0].decode("ascii")
    if key_type not in SUPPORTED_TYPES or (declared_type and declared_type != key_type):
        raise _invalid()
    bits = _dss_bits(blob) if key_type == "ssh-dss" else _loaded_bits(key_type, blob)
    b64 = base64.b64encode(blob).decode("ascii")
    openssh = f"{key_type} {b64}" + (f" {comment}" if comment else "")
    return PublicKey(openssh, key_type, blob, fingerprint_md5(blob), bits)


def _loaded_bits(key_type: str, blob: bytes) -> int:
    """Load a non-DSA blob with cryptography, check it is canonical, return its size."""
    line = f"{key_type} {base64.b64encode(blob).decode('ascii')}".encode("ascii")
    key = serialization.load_ssh_public_key(line)
    again = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    if again != line:
        raise _invalid()
    if isinstance(key, rsa.RSAPublicKey):
        if not MIN_RSA_BITS <= key.key_size <= MAX_RSA_BITS or key.public_numbers().n % 2 == 0:
            raise _invalid()
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    return 256  # ssh-ed25519


def _dss_bits(blob: bytes) -> int:
    """Decode and validate an ``ssh-dss`` blob (string type, mpint p, q, g, y)."""
    values: list[int] = []
    pos = _read_string(blob, 0)[1]
    for _ in range(4):
        raw, pos = _read_string(blob, pos)
        values.append(int.from_bytes(raw, "big"))
    p, q, g, y = values
    if blob != _ssh_string(b"ssh-dss") + b"".join(_mpint(v) for v in values):
        raise _invalid()  # trailing data or non-canonical mpint
    key = dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
    return key.key_size


def _read_string(data: bytes, pos: int) -> tuple[bytes, int]:
    """Read one SSH ``string`` at ``pos``; return (value, next position)."""
    if pos + 4 > len(data):
        raise _invalid()
    (length,) = struct.unpack_from(">I", data, pos)
    end = pos + 4 + length
    if end > len(data):
        raise _invalid()
    return data[pos + 4 : end], end


def _ssh_string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


def _mpint(value: int) -> bytes:
    """SSH ``mpint`` of a non-negative integer (RFC 4251 §5)."""
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return _ssh_string(raw)


def _b64decode(data: str) -> bytes:
    """Strict, canonical base64 (padding required, zero trailing bits), as OpenSSH reads it."""
    if not data or not _BASE64_RE.fullmatch(data):
        raise _invalid()
    raw = base64.b64decode(data, validate=True)
    if base64.b64encode(raw).decode("ascii") != data:
        raise _invalid()
    return raw


def _looks_like_blob(word: str) -> bool:
    """True when ``word`` decodes to something starting with an SSH type string."""
    if len(word) < 16 or not word.startswith("AAAA") or not _BASE64_RE.fullmatch(word):
        return False
    try:
        raw = base64.b64decode(word + "=" * (-len(word) % 4))
        type_word = _read_string(raw, 0)[0]
    except (binascii.Error, BceError):
        return False
    return bool(_TYPE_WORD_RE.fullmatch(type_word))
