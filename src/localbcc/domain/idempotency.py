"""clientToken replay (§6): same token and request answer as the first time."""
from __future__ import annotations

import hashlib
from typing import Any

import orjson

from ..errors import BceError, ErrorCode
from .ports import Tx


def request_hash(request: Any) -> str:
    try:
        canonical = orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # orjson reads 1024 levels of nesting, writes 255
        raise BceError(ErrorCode.InappropriateJSON,
                       "The JSON body is nested too deeply (at most 250 levels).") from None
    return hashlib.sha256(canonical).hexdigest()


def replay(tx: Tx, account: str, operation: str, token: str | None, digest: str) -> Any | None:
    """The stored answer of an earlier request with this token, or None."""
    if token is None:
        return None
    found = tx.get_token(account, operation, token)
    if found is None:
        return None
    stored_hash, response = found
    if stored_hash != digest:
        raise BceError(ErrorCode.IdempotentParameterMismatch)
    return orjson.loads(response)


def remember(tx: Tx, account: str, operation: str, token: str | None, digest: str,
             response: Any, now: float) -> None:
    if token is not None:
        tx.put_token(account, operation, token, digest, orjson.dumps(response).decode(), now)
