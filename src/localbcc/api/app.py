"""The ASGI application: a thin layer that authenticates, routes, reads the
body, calls one handler and renders its answer or error.

No framework: a dict lookup routes every operation (see routes.py), which
keeps the per-request overhead to a few microseconds (docs/design.md).
"""
from __future__ import annotations

import gc
import logging
import os
import time
from typing import Any
from urllib.parse import unquote

import orjson

from ..errors import BceError, ErrorCode, envelope
from .. import ssh
from . import openapi
from .accesslog import AccessLog, quote
from .context import Context
from .metrics import CONTENT_TYPE as _METRICS_TYPE, Metrics, is_loopback
from .protocol import BODY_TIMEOUT_KEY
from .request import Request
from .routes import resolve

log = logging.getLogger("localbcc.api")

MAX_BODY = 1 << 20
_JSON = (b"content-type", b"application/json;charset=UTF-8")
_PUBLIC = {"/healthz", "/openapi.json", "/metrics"}  # no signature needed
_CLOSE = (b"connection", b"close")
#: Errors after which the rest of the request is not read: close the connection.
_CLOSING = frozenset({ErrorCode.RequestEntityTooLarge, ErrorCode.RequestTimeout})


class App:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.metrics = Metrics()
        self.access_log = AccessLog()
        self.metrics_public = ctx.settings.metrics_public

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
                # What start-up built (modules, SQLAlchemy's metadata, the SSH
                # listeners) lives as long as the process: keep it out of the
                # cyclic garbage collector's scans (docs/performance.md).
                gc.freeze()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await ssh.stop_service(getattr(self, "_ssh", None))
                self.access_log.flush()
                self.ctx.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict, receive, send) -> None:
        started = time.perf_counter()
        request_id = _request_id()
        method, path = scope["method"], scope["path"]
        req = Request(method, path, {}, request_id)
        if path in _PUBLIC:
            return await self._public(scope, send, req, started)
        code, close = "OK", False
        self.metrics.in_flight += 1
        try:
            status, payload = 200, await self._operation(scope, receive, req)
        except BceError as err:
            code, close = err.code.wire, err.code in _CLOSING
            status, payload = err.status, envelope(request_id, err)
        except Exception:  # never a traceback on the wire
            log.exception("internal error in %s %s (request %s)", quote(method), quote(path),
                          request_id)
            code, status = ErrorCode.InternalError.wire, 500
            payload = envelope(request_id, BceError(ErrorCode.InternalError))
        body = orjson.dumps(payload) if payload is not None else b""
        headers = [(b"x-bce-request-id", request_id.encode()),
                   (b"content-length", str(len(body)).encode())]
        if body:
            headers.append(_JSON)
        if close:
            headers.append(_CLOSE)  # the body was left unread: do not parse it as a request
        self.metrics.in_flight -= 1
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        handler = scope.get("localbcc.handler")
        self._done(req, handler.__name__ if handler is not None else "none", code, status, started)

    def _done(self, req: Request, operation: str, code: str, status: int, started: float) -> None:
        """Metrics and the access log line (no secrets: ids, names and codes only)."""
        elapsed = time.perf_counter() - started
        self.metrics.observe(operation, code, elapsed)
        if self.access_log.enabled():
            self.access_log.add(req.request_id, req.account or "-", req.method, req.path,
                                req.flag or "-", operation, status, code, elapsed * 1000)

    async def _public(self, scope: dict, send, req: Request, started: float) -> None:
        """/healthz, /openapi.json and /metrics: unsigned, outside the /v2 API."""
        path, code, status, ctype, body = req.path, "OK", 200, _JSON[1], b""
        err: BceError | None = None
        if path == "/healthz":
            body = b'{"status":"ok"}'
        elif req.method not in ("GET", "HEAD"):
            err = BceError(ErrorCode.InvalidURI)
        elif path == "/openapi.json":
            body = openapi.document_bytes()
        elif self.metrics_public or is_loopback(scope.get("client")):
            body, ctype = self.metrics.render(), _METRICS_TYPE
        else:
            err = BceError(ErrorCode.AccessDenied, "GET /metrics is served to loopback clients "
                                                   "only (see --metrics-public).")
        if err is not None:
            code, status = err.code.wire, err.status
            body = orjson.dumps(envelope(req.request_id, err))
        headers = [(b"x-bce-request-id", req.request_id.encode()),
                   (b"content-length", str(len(body)).encode()), (b"content-type", ctype)]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if req.method == "HEAD" else body})
        self._done(req, path.strip("/").replace(".", "_"), code, status, started)

    async def _operation(self, scope: dict, receive, req: Request) -> Any:
        headers = scope["headers"]
        length = _body_length(headers)
        if length is not None and length > MAX_BODY:
            raise BceError(ErrorCode.RequestEntityTooLarge)
        pairs = _query_pairs(scope["query_string"])
        req.query = dict(reversed(pairs))  # the first occurrence wins
        req.account, req.secret_key = await self.ctx.verifier.verify(req.method, req.path, pairs,
                                                                     headers)
        _check_version(req.path)
        handler, req.item_id, req.flag = resolve(req.method, req.path, req.query)
        scope["localbcc.handler"] = handler  # for metrics and the access log
        if length != 0:  # a body was announced (Content-Length, or chunked: None)
            req.body = await _read_body(receive, scope)
        return await handler(self.ctx, req)


def _request_id() -> str:
    """A fresh version-4 UUID (spec §1), as ``str(uuid.uuid4())`` gives: 122
    bits from ``os.urandom``, so ids are unguessable, not a counter (issue 17).
    The random bytes are read for 256 ids at a time and hex-encoded once, which
    makes an id cheaper than the counter scheme it replaced (figures in
    docs/performance.md, "Smaller things on every request"). A forked child drops the
    batch it inherited (:func:`_forget_ids`), so processes never share ids."""
    pool = _IDS
    h, at = pool.hex, pool.at
    if at >= len(h):
        h = pool.hex = os.urandom(16 * _ID_BATCH).hex()
        at = 0
    pool.at = at + 32
    # 8-4-4-4-12; the 13th hex digit is the version (4), the 17th the RFC 4122
    # variant (one of 8, 9, a, b: the random digit's two low bits kept).
    return (f"{h[at:at + 8]}-{h[at + 8:at + 12]}-4{h[at + 13:at + 16]}-"
            f"{_VARIANT[h[at + 16]]}{h[at + 17:at + 20]}-{h[at + 20:at + 32]}")


class _IdPool:
    def __init__(self) -> None:
        self.hex = ""  # 32 hex digits per id
        self.at = 0  # where the next id's digits start


_ID_BATCH = 256
_IDS = _IdPool()
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


def _forget_ids() -> None:
    _IDS.hex, _IDS.at = "", 0


os.register_at_fork(after_in_child=_forget_ids)


def _check_version(path: str) -> None:
    if path.startswith("/v2/") or path == "/v2":
        return
    head = path[1:].split("/", 1)[0]
    if len(head) > 1 and head[0] == "v" and head[1:].isdigit():
        raise BceError(ErrorCode.InvalidVersion)
    raise BceError(ErrorCode.InvalidURI)


def _query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """The query's (name, value) pairs, ``&``-separated, split at the first ``=``
    and percent-decoded as UTF-8 (RFC 3986): ``%2B`` is ``+``, ``%20`` a space,
    and a literal ``+`` is a ``+``. Not ``parse_qsl``, whose form decoding turns
    ``+`` into a space: a client that signed a ``+`` was refused (issue 17). The
    SDKs send ``%2B`` and ``%20``; handlers and the signature check see these
    same pairs. Empty items are skipped, a name without ``=`` has the value ``""``."""
    if not raw:
        return []
    try:
        text = raw.decode("ascii")
        pairs = [(name, value) for name, _, value in
                 (item.partition("=") for item in text.split("&") if item)]
        if "%" not in text:  # nothing to decode
            return pairs
        return [(unquote(name, errors="strict") if "%" in name else name,
                 unquote(value, errors="strict") if "%" in value else value)
                for name, value in pairs]
    except (UnicodeDecodeError, ValueError):
        raise BceError(ErrorCode.InvalidURI, "The query string is not valid.") from None


def _body_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    """The announced body length: Content-Length, None when chunked (unknown
    until read), 0 when neither header is there (HTTP/1.1: no body)."""
    length: int | None = 0
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
        if name == b"transfer-encoding":
            length = None
    return length


async def _read_body(receive, scope: dict) -> bytes:
    """Read the body, refusing (413) as soon as it passes 1 MiB, and (408) one
    that the protocol cut short because it was too slow (api/protocol.py)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":  # never act on half a body
            raise BceError(ErrorCode.RequestTimeout, "The client went away before sending the body.")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BceError(ErrorCode.RequestEntityTooLarge)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if BODY_TIMEOUT_KEY in scope:
        raise BceError(ErrorCode.RequestTimeout, "The request body was not received in time.")
    return b"".join(chunks)
