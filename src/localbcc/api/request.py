"""The request a handler receives: already authenticated, routed and read."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import BceError, ErrorCode


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    request_id: str
    account: str = ""
    item_id: str | None = None
    flag: str | None = None
    body: bytes = b""
    #: The account's secret key, found when the signature was checked: create
    #: and rebuild decrypt ``adminPass`` with it (spec §5.2). Never logged.
    secret_key: str = field(default="", repr=False)

    def json(self) -> Any:
        """The body as JSON; an empty body is ``None`` (rules then say what was missing)."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return _json_orjson_refused(self.body)

    @property
    def id(self) -> str:
        """The item id, on a route that has one (routes.resolve makes sure)."""
        assert self.item_id is not None
        return self.item_id

    def param(self, name: str) -> str | None:
        return self.query.get(name)


def _json_orjson_refused(body: bytes) -> Any:
    """A body orjson refused, parsed again by the standard library, where only a
    number out of a double's range (``1e400``, valid JSON per RFC 8259) can make
    the difference: it becomes ``inf``, which no field accepts, so an unknown
    field holding one is ignored and a known one gets that field's usual error
    (issue 17). What orjson refuses for any other reason stays MalformedJSON:
    the text must be strict UTF-8; ``NaN`` and ``Infinity`` are not JSON; a
    lone surrogate escape (``"\\ud800"``), which the standard library lets
    through, is refused as orjson does; integers become what orjson makes of
    them (beyond 64 bits, a float). Only requests orjson refused get here."""
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_not_json, parse_int=_int)
        json.dumps(doc, ensure_ascii=False).encode("utf-8")  # no lone surrogates
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeError are ValueErrors
        raise BceError(ErrorCode.MalformedJSON) from None
    return doc


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _int(text: str) -> int | float:
    """An integer as orjson reads it: an int within 64 bits, else a float."""
    if len(text) <= 20:
        value = int(text)
        if -(1 << 63) <= value < (1 << 64):
            return value
    return float(text)
