"""Field rules of spec §4.3, §4.4, §4.6 and §6, each written once."""
from __future__ import annotations

import re
import secrets
import string
import unicodedata
from typing import Any

from ..errors import BceError, ErrorCode, inappropriate

_ID_ALPHABET = string.ascii_letters + string.digits
_ID_RE = re.compile(r"[A-Za-z0-9]{8}")
NAME_MAX = 65
DESCRIPTION_MAX = 140  # key pairs (spec §4.3)
INSTANCE_DESCRIPTION_MAX = 200  # instances' desc (part 2 §1, modifyDesc)
CPU_COUNTS = (1, 1024)  # cpuCount of create, inclusive
MEMORY_GBS = (1, 16384)  # memoryCapacityInGB of create, inclusive
_NAME_SYMBOLS = frozenset("-_/.")
_MARKS = frozenset({"Mn", "Mc", "Me"})
#: Bidirectional embedding, override and isolate controls: they reorder what a
#: reader sees (text disguised as other text), so no description may hold them.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: §6 of bcc-instances-more.md: a lower-case letter, then letters, digits and single
#: ``-`` or ``.`` between them (never two in a row, never last).
_HOSTNAME_RE = re.compile(r"[a-z](?:[-.]?[a-z0-9])+")
HOSTNAME_MIN, HOSTNAME_MAX = 2, 64
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
    if value is not None and "\x00" in value:  # not every backend can store NUL in text
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


# -- the rules, as predicates (the API below, and `db import`, use these) ------------


def is_id(value: str, prefix: str) -> bool:
    """An id :func:`new_id` could have made: ``prefix`` and 8 of [A-Za-z0-9]."""
    return value.startswith(prefix) and _ID_RE.fullmatch(value, len(prefix)) is not None


def is_name(value: str) -> bool:
    """The name rule of key pairs (spec §4.3) and instances (part 2 §6): 1–65
    characters; a letter first, then letters, digits, CJK, ``-``, ``_``, ``/``,
    ``.``. A letter may carry combining marks (Mn, Mc, Me): NFD "café" and
    "सर्वर" are names as much as their composed forms; a mark after anything
    else is not. Letters and digits are those of any script (``str.isalpha``,
    ``str.isalnum``; CJK ideographs are letters)."""
    if not 1 <= len(value) <= NAME_MAX or not value[0].isalpha():
        return False
    after_letter = True
    for ch in value[1:]:
        if unicodedata.category(ch) in _MARKS:
            if not after_letter:
                return False
            continue  # a mark keeps the letter it sits on a letter
        after_letter = ch.isalpha()
        if not (after_letter or ch.isalnum() or ch in _NAME_SYMBOLS):
            return False
    return True


def is_text(value: str, max_len: int = DESCRIPTION_MAX) -> bool:
    """Free text such as a description: at most ``max_len`` characters, none of
    them a control character (Cc: NUL, ESC, BEL, newlines...), a lone surrogate
    (Cs) or a bidirectional embedding/override/isolate control. Everything else,
    joiners, combining marks and any kind of space included, is text, stored as
    sent (nothing is normalised)."""
    if len(value) > max_len:
        return False
    for ch in value:
        if ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Cs"):
            return False
    return True


def is_hostname(value: str) -> bool:
    """Part 2 §6: 2–64 characters of lower-case letters, digits, ``-`` and ``.``,
    a letter first, no two symbols in a row, not ending with a symbol."""
    return (HOSTNAME_MIN <= len(value) <= HOSTNAME_MAX
            and _HOSTNAME_RE.fullmatch(value) is not None)


# -- fields of request bodies -------------------------------------------------------------


def keypair_name(body: dict, field: str = "name") -> str:
    name = required_str(body, field)
    if not is_name(name):
        raise BceError(ErrorCode.KeypairNameInvalid)
    return name


def keypair_description(body: dict, field: str = "description") -> str:
    value = body.get(field)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise inappropriate(field, "must be a string")
    if not is_text(value):
        raise BceError(ErrorCode.KeypairDescriptionInvalid)
    return value


def instance_name(body: dict, field: str = "name") -> str | None:
    """An instance's optional ``name`` (part 2 §6); None when absent or ``""`` (the
    Go SDK sends zero values)."""
    value = optional_str(body, field) or None
    if value is not None and not is_name(value):
        raise inappropriate(field, f"must be 1-{NAME_MAX} characters: a letter first, then "
                                   f"letters, digits, CJK characters, '-', '_', '/' or '.'")
    return value


def hostname(body: dict, field: str = "hostname") -> str | None:
    """An instance's optional ``hostname`` (part 2 §6); None when absent or ``""``."""
    value = optional_str(body, field) or None
    if value is not None and not is_hostname(value):
        raise inappropriate(field, f"must be {HOSTNAME_MIN}-{HOSTNAME_MAX} characters of "
                                   f"lower-case letters, digits, '-' and '.', starting with a "
                                   f"letter, with no two symbols in a row and no symbol last")
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
