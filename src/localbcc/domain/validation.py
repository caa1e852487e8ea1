"""Field rules of spec §4.3, §4.4, §4.6 and §6, each written once."""
from __future__ import annotations

import re
import secrets
import string
from typing import Any

from ..errors import BceError, ErrorCode, inappropriate

# A letter (any script, CJK included) first; then letters, digits, CJK, - _ / .
_NAME_RE = re.compile(r"^[^\W\d_][\w\-/.]{0,64}$")
_ID_ALPHABET = string.ascii_letters + string.digits
MAX_KEYS_DEFAULT = 1000
MAX_IDS = 100  # instances named in one attach or detach body
MAX_FILTER_IDS = 1000  # instances named in the instanceIds filter of a list


def new_id(prefix: str) -> str:
    """``k-``/``i-`` plus 8 random characters of [A-Za-z0-9]."""
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def body_object(body: Any) -> dict:
    if not isinstance(body, dict):
        raise BceError(ErrorCode.InappropriateJSON, "The request body must be a JSON object.")
    return body


def required_str(body: dict, field: str) -> str:
    value = body.get(field)
    if not isinstance(value, str):
        raise inappropriate(field, "is required and must be a string")
    return value


def optional_str(body: dict, field: str, max_len: int | None = None) -> str | None:
    """A string or None; ``max_len`` is the column's size where it is stored."""
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise inappropriate(field, "must be a string")
    if value is not None and "\x00" in value:  # PostgreSQL refuses NUL in text
        raise inappropriate(field, "must not contain NUL characters")
    if value is not None and max_len is not None and len(value) > max_len:
        raise inappropriate(field, f"may be at most {max_len} characters long")
    return value


def optional_int(body: dict, field: str, default: int, lo: int, hi: int) -> int:
    value = body.get(field)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise inappropriate(field, f"must be an integer from {lo} to {hi}")
    return value


def keypair_name(body: dict, field: str = "name") -> str:
    name = required_str(body, field)
    if not _NAME_RE.match(name) or not name.isprintable():
        raise BceError(ErrorCode.KeypairNameInvalid)
    return name


def keypair_description(body: dict, field: str = "description") -> str:
    value = body.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise inappropriate(field, "must be a string")
    if len(value) > 140 or not value.isprintable():
        raise BceError(ErrorCode.KeypairDescriptionInvalid)
    return value


def instance_ids(body: dict, field: str = "instanceIds") -> list[str]:
    """1–100 distinct strings, first occurrence order kept (§4.6)."""
    value = body.get(field)
    if not isinstance(value, list) or not value:
        raise inappropriate(field, "must be a non-empty list of instance ids")
    if not all(isinstance(v, str) for v in value):
        raise inappropriate(field, "must hold strings only")
    ids = list(dict.fromkeys(value))
    if len(ids) > MAX_IDS:
        raise inappropriate(field, f"may hold at most {MAX_IDS} distinct ids")
    return ids


def instance_ids_param(raw: str | None) -> list[str] | None:
    """The ``instanceIds`` filter of a list: comma-separated ids, or None."""
    if raw is None or raw == "":
        return None
    ids = [part.strip() for part in raw.split(",") if part.strip()]
    if len(ids) > MAX_FILTER_IDS:
        raise inappropriate("instanceIds", f"may name at most {MAX_FILTER_IDS} ids")
    return ids


def max_keys(raw: str | None) -> int:
    if raw is None or raw == "":
        return MAX_KEYS_DEFAULT
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise inappropriate("maxKeys", "must be a positive integer")
    return min(int(raw), MAX_KEYS_DEFAULT)


def client_token(raw: str | None) -> str | None:
    if raw is None or raw == "":
        return None
    if len(raw) > 64 or not raw.isascii() or not raw.isprintable():
        raise inappropriate("clientToken", "must be at most 64 printable ASCII characters")
    return raw
