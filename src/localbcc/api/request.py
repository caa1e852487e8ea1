"""The request a handler receives: already authenticated, routed and read."""
from __future__ import annotations

from dataclasses import dataclass
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

    def json(self) -> Any:
        """The body as JSON; an empty body is ``None`` (rules then say what was missing)."""
        if not self.body:
            return None
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise BceError(ErrorCode.MalformedJSON) from None

    @property
    def id(self) -> str:
        """The item id, on a route that has one (routes.resolve makes sure)."""
        assert self.item_id is not None
        return self.item_id

    def param(self, name: str) -> str | None:
        return self.query.get(name)
