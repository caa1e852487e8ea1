"""The ASGI application: a thin layer that authenticates, routes, reads the
body, calls one handler and renders its answer or error.

No framework: a dict lookup routes every operation (see routes.py), which
keeps the per-request overhead to a few microseconds (docs/design.md).
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ..errors import BceError, ErrorCode
from .. import ssh
from .context import Context
from .request import Request
from .routes import resolve

log = logging.getLogger("localbcc.api")
access_log = logging.getLogger("localbcc.access")

MAX_BODY = 1 << 20
_JSON = (b"content-type", b"application/json;charset=UTF-8")
_PUBLIC = {"/healthz"}


class App:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # SSH endpoints of Running instances are reachable before /healthz answers.
                self._ssh = await ssh.start_service(self.ctx)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await ssh.stop_service(getattr(self, "_ssh", None))
                self.ctx.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive, send) -> None:
        started = time.perf_counter()
        request_id = str(uuid.uuid4())
        method, path = scope["method"], scope["path"]
        req = Request(method, path, {}, request_id)
        try:
            if path in _PUBLIC:
                status, payload = 200, {"status": "ok"}
            else:
                status, payload = 200, await self._operation(scope, receive, req)
        except BceError as err:
            status, payload = err.status, {"requestId": request_id, "code": err.code.wire,
                                           "message": err.message}
        except Exception:  # never a traceback on the wire
            log.exception("internal error in %s %s (request %s)", method, path, request_id)
            status, payload = 500, {"requestId": request_id, "code": ErrorCode.InternalError.wire,
                                    "message": ErrorCode.InternalError.default_message}
        body = orjson.dumps(payload) if payload is not None else b""
        headers = [(b"x-bce-request-id", request_id.encode()),
                   (b"content-length", str(len(body)).encode())]
        if body:
            headers.append(_JSON)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        if access_log.isEnabledFor(logging.INFO):
            access_log.info("request_id=%s ak=%s method=%s path=%s flag=%s status=%d ms=%.2f",
                            request_id, req.account or "-", method, path, req.flag or "-",
                            status, (time.perf_counter() - started) * 1000)

    async def _operation(self, scope: dict, receive, req: Request) -> Any:
        headers = scope["headers"]
        length = _content_length(headers)
        if length is not None and length > MAX_BODY:
            raise BceError(ErrorCode.RequestEntityTooLarge)
        pairs = _query_pairs(scope["query_string"])
        req.query = dict(reversed(pairs))  # the first occurrence wins
        req.account = self.ctx.verifier.verify(req.method, req.path, pairs, headers)
        req.secret_key = self.ctx.accounts.secret_of(req.account) or ""
        _check_version(req.path)
        handler, req.item_id, req.flag = resolve(req.method, req.path, req.query)
        req.body = await _read_body(receive)
        return await handler(self.ctx, req)


def _check_version(path: str) -> None:
    if path.startswith("/v2/") or path == "/v2":
        return
    head = path[1:].split("/", 1)[0]
    if len(head) > 1 and head[0] == "v" and head[1:].isdigit():
        raise BceError(ErrorCode.InvalidVersion)
    raise BceError(ErrorCode.InvalidURI)


def _query_pairs(raw: bytes) -> list[tuple[str, str]]:
    if not raw:
        return []
    try:
        return parse_qsl(raw.decode("ascii"), keep_blank_values=True,
                         encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BceError(ErrorCode.InvalidURI, "The query string is not valid.") from None


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _read_body(receive) -> bytes:
    """Read the body, refusing (413) as soon as it passes 1 MiB."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BceError(ErrorCode.RequestEntityTooLarge)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
