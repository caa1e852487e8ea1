"""The ASGI application: a thin layer that authenticates, routes, reads the
body, calls one handler and renders its answer or error.

No framework: a dict lookup routes every operation (see routes.py), which
keeps the per-request overhead to a few microseconds (docs/design.md).
"""
from __future__ import annotations

import gc
import itertools
import logging
import random
import time
from typing import Any
from urllib.parse import parse_qsl

import orjson

from ..errors import BceError, ErrorCode, envelope
from .. import ssh
from ..store.accounts import SecretNotCached
from . import openapi
from .accesslog import AccessLog
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
            log.exception("internal error in %s %s (request %s)", method, _printable(path),
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
            self.access_log.add(req.request_id, req.account or "-", req.method,
                                _printable(req.path), req.flag or "-", operation, status, code,
                                elapsed * 1000)

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
        missing = ""
        try:
            req.account = self.ctx.verifier.verify(req.method, req.path, pairs, headers)
        except SecretNotCached as miss:
            missing = miss.access_key
        if missing:  # a network database: the secret key is read off the event loop, then again
            secret = await self.ctx.secret_key(missing)
            req.account = self.ctx.verifier.verify(req.method, req.path, pairs, headers,
                                                   lambda _: secret)
        _check_version(req.path)
        handler, req.item_id, req.flag = resolve(req.method, req.path, req.query)
        scope["localbcc.handler"] = handler  # for metrics and the access log
        if length != 0:  # a body was announced (Content-Length, or chunked: None)
            req.body = await _read_body(receive, scope)
        return await handler(self.ctx, req)


def _request_id() -> str:
    """A version-4 UUID, as BCE request ids are: 74 random bits chosen once per
    process (with the 6 version and variant bits, the first 80), then a 48-bit
    counter. Unique (not secret), and a tenth of the cost of ``uuid.uuid4()``,
    which reads os.urandom on every request."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


def _id_prefix() -> str:
    h = "%032x" % (random.SystemRandom().getrandbits(128) & ~((0xF << 76) | (0x3 << 62))
                   | (0x4 << 76) | (0x2 << 62))  # version 4, RFC 4122 variant
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-"


_ID_PREFIX = _id_prefix()
_ID_COUNTER = itertools.count(random.getrandbits(48))


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
        text = raw.decode("ascii")
        if "%" not in text and "+" not in text:  # nothing to decode: what parse_qsl does, faster
            return [(name, value) for name, _, value in
                    (item.partition("=") for item in text.split("&") if item)]
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict")
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


def _printable(text: str) -> str:
    """Text safe for one log line: control characters (a decoded %0A) escaped."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


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
