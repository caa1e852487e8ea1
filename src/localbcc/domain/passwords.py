"""adminPass: the SDKs send it AES-128-ECB encrypted with the first 16 bytes of
the secret key, hex encoded (``baidubce.utils.aes128_encrypt_16char_key``).
We decrypt it and keep only a salted scrypt hash."""
from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ..errors import inappropriate

_N, _R, _P = 2**14, 8, 1


def decrypt_admin_pass(cipher_hex: str, secret_key: str) -> str:
    try:
        data = bytes.fromhex(cipher_hex)
        if not data or len(data) % 16:
            raise ValueError
        dec = Cipher(algorithms.AES(secret_key[:16].encode()), modes.ECB()).decryptor()
        padded = dec.update(data) + dec.finalize()
        pad = padded[-1]
        if not 1 <= pad <= 16 or padded[-pad:] != bytes([pad]) * pad:
            raise ValueError
        return padded[:-pad].decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise inappropriate("adminPass", "is not a password encrypted with the caller's secret key") from None


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=_N, r=_R, p=_P)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)
