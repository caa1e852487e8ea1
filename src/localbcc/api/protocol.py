"""uvicorn's httptools protocol, hardened against slow and broken clients.

uvicorn bounds the idle time *between* requests (``timeout_keep_alive``) but
not the time a client takes to send a request: a client that connects and
sends nothing, or trickles its headers or its body a byte at a time, would
hold its connection (a file descriptor, a little memory, and for a body the
request's task) for ever. This protocol gives every request

* ``header_timeout`` seconds to complete its headers, counted from the
  connection (first request) or the request's first byte (later ones on a
  kept-alive connection); after that it answers 408 ``RequestTimeout`` in the
  BCE envelope itself and closes;
* ``body_timeout`` seconds, from the end of the headers, to complete its body;
  after that it ends the body early and marks the scope
  (``scope["localbcc.body_timeout"]``), so the application answers 408 with
  its own request id and access log line, then the connection closes. A client
  still trickling a body the application did not want (answered early, e.g.
  403) is simply disconnected.

It also answers bytes that are not HTTP/1.1 with a BCE envelope (400
``InvalidHTTPRequest``) instead of uvicorn's plain-text 400, so every answer
a client can get from localbcc is the envelope the SDKs parse, and only after
the answers of the requests pipelined before those bytes, in order (uvicorn
writes its 400 at once, so the client took it for an earlier request's answer:
see :meth:`LimitedHttpToolsProtocol.send_400_response`).

Cost per request: a few attribute stores, no allocation. The deadlines are
checked by one timer per connection, re-armed when it fires.
"""
from __future__ import annotations

import asyncio
import logging
import uuid

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ..errors import BceError, ErrorCode, envelope
from .accesslog import LOGGER

access_log = logging.getLogger(LOGGER)
BODY_TIMEOUT_KEY = "localbcc.body_timeout"


def raw_error(code: ErrorCode, message: str | None = None) -> bytes:
    """A complete ``Connection: close`` HTTP/1.1 error response in the BCE envelope."""
    request_id = str(uuid.uuid4())
    body = orjson.dumps(envelope(request_id, BceError(code, message)))
    reason = {400: "Bad Request", 408: "Request Timeout"}.get(code.status, "Error")
    head = (f"HTTP/1.1 {code.status} {reason}\r\n"
            f"x-bce-request-id: {request_id}\r\n"
            "content-type: application/json;charset=UTF-8\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n")
    access_log.info("request_id=%s ak=- method=- path=- flag=- op=none status=%d code=%s",
                    request_id, code.status, code.wire)
    return head.encode("ascii") + body


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    #: Seconds a client has to send a request's headers, and then its body;
    #: server.py sets both from Settings.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    #: uvicorn's: the newest request's cycle (None before the first request).
    cycle: RequestResponseCycle | None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._awaiting_headers = True  # the first request's clock starts at connect
        self._reading_body = False
        self._previous: RequestResponseCycle | None = None  # the request before this one
        self._since = self.loop.time()  # when the current phase started
        self._timer: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout, self._check)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._awaiting_headers:
            self._awaiting_headers = True
            self._since = self.loop.time()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._reading_body = True
        self._since = self.loop.time()
        self._previous = self.cycle  # super() makes this request's cycle
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_body = False
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def _check(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        left = self.header_timeout
        if self._awaiting_headers:
            left = self._since + self.header_timeout - now
            idle = self.cycle is None or self.cycle.response_complete
            if left <= 0 and idle:  # never interleave with a response being written
                self.transport.write(raw_error(ErrorCode.RequestTimeout,
                                               "The request headers were not received in time."))
                self.transport.close()
                return
        elif self._reading_body:
            left = self._since + self.body_timeout - now
            if left <= 0:
                self._body_timed_out()
                if self.transport.is_closing():
                    return
                left = self.header_timeout
        self._timer = self.loop.call_later(max(left, 0.05), self._check)

    def _body_timed_out(self) -> None:
        self._reading_body = False
        cycle = self.cycle
        if cycle is None or cycle.response_complete or cycle.disconnected:
            self.transport.close()  # nobody waits for this body: drop the connection
            return
        # End the body here; the application sees the mark and answers 408.
        cycle.scope[BODY_TIMEOUT_KEY] = True  # type: ignore[literal-required]
        cycle.more_body = False
        cycle.message_event.set()
        self.flow.pause_reading()  # ignore the rest; the 408 closes the connection

    def send_400_response(self, msg: str) -> None:
        """Bytes that are not HTTP/1.1: answer 400 and close, but only after
        every earlier request on the connection has been answered.

        httptools parses all it is given in one ``feed_data``: of a complete
        request followed by garbage in one read, the request's task has been
        started (or queued in ``self.pipeline``) by the time the parse error
        reaches uvicorn, whose own ``send_400_response`` writes the 400 and
        closes at once. The request still runs, but its answer is lost and the
        client takes the 400 for it (a created key pair's private key, gone).
        Here the 400 follows the last earlier request's answer; a request whose
        body is what failed to parse is never run."""
        self.parser = _DISCARD  # nothing after the error is parsed
        self._awaiting_headers = self._reading_body = False  # no 408 for the garbage
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not cycle.response_complete:
            # The error is inside this request's body: the request is broken.
            if not (self.pipeline and self.pipeline[0][0] is cycle):
                return self._refuse()  # it runs, waiting for a body it will never get
            self.pipeline.popleft()  # queued behind earlier ones: never run it
            cycle = self._previous
            self.cycle = cycle  # the one a graceful shutdown lets finish
        if cycle is None or cycle.response_complete:  # nothing earlier is unanswered
            return self._refuse()
        answered = cycle.on_response  # the protocol's on_response_complete

        def then_refuse() -> None:
            answered()
            self._refuse()

        cycle.on_response = then_refuse  # after the last earlier answer (in order)
        self.flow.pause_reading()

    def _refuse(self) -> None:
        if not self.transport.is_closing():  # (an earlier answer may have closed it)
            self.transport.write(raw_error(ErrorCode.InvalidHTTPRequest))
            self.transport.close()


class _Discard:
    """Stands in for the parser after a parse error: what else arrives is dropped."""

    def feed_data(self, data: bytes) -> None:
        pass


_DISCARD = _Discard()
