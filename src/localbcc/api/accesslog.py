r"""The access log: one line per request, written in batches.

The ``localbcc.access`` logger's level decides whether lines are written (on
at the default ``--log-level info``), and the lines look exactly like every
other log line (server.configure_logging's layout, on stderr):

    2026-11-28 17:11:04,396 INFO localbcc.access request_id=… ak=… method=GET …

What differs is the path there. Going through ``logging.Logger.info`` per
request (a LogRecord, the caller's frame, the formatter, a locked write and a
flush) costs as much as uvicorn's whole hello-world request
(docs/performance.md). Here a request only appends its fields to a list; the
pending lines are formatted (with a timestamp prefix cached per second) and
written to stderr in one call at most ``FLUSH_SECONDS`` later, or at once when
``FLUSH_LINES`` are pending, and at shutdown (docs/performance.md). A process
killed by SIGKILL can lose the lines of its last ``FLUSH_SECONDS``.

Every field is ``name=value``, separated by one space, and a line parses into
exactly the fields that were logged, whatever a client put in its path or
headers (issue 17: a path with spaces planted fake ``ak=… status=…`` fields).
The rule (logfmt's, with Python's escapes), for every field: a value of
printable ASCII without space, ``"``, ``=`` or ``\`` is written as it is;
any other value, the empty one included, is written in double quotes, with
``\`` as ``\\``, ``"`` as ``\"``, and control and non-ASCII characters as
Python's ``unicode_escape`` writes them (``\n``, ``\r``, ``\t``, ``\xNN``,
``\uNNNN``, ``\UNNNNNNNN``). So a quoted value never holds a raw ``"`` or a
line break (:func:`quote`). Most lines need no quotes, and finding that out
takes a few C-level tests over the fields a client's bytes reach, joined.
"""
from __future__ import annotations

import asyncio
import logging
import sys
import time

LOGGER = "localbcc.access"
FLUSH_SECONDS = 0.05
FLUSH_LINES = 256


def _plain(text: str) -> bool:
    """Printable ASCII without space, double quote, ``=`` or backslash: no quotes
    needed (if not empty). Cheaper than a regex: each test is one C call."""
    return (text.isascii() and text.isprintable() and " " not in text and '"' not in text
            and "=" not in text and "\\" not in text)


def quote(value: str) -> str:
    """One field's value as the access log writes it (the module's rule)."""
    if value and _plain(value):
        return value
    return '"' + value.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


class AccessLog:
    def __init__(self) -> None:
        self._logger = logging.getLogger(LOGGER)
        self._pending: list[tuple] = []
        self._second = -1
        self._prefix = ""

    def enabled(self) -> bool:
        return self._logger.isEnabledFor(logging.INFO)

    def add(self, request_id: str, account: str, method: str, path: str, flag: str,
            operation: str, status: int, code: str, ms: float) -> None:
        """Queue one request's line (callers check :meth:`enabled` first)."""
        pending = self._pending
        pending.append((time.time(), request_id, account, method, path, flag,
                        operation, status, code, ms))
        if len(pending) == 1:  # the first since the last flush: flush soon
            try:
                asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)
            except RuntimeError:  # no event loop (a direct call): write it now
                self.flush()
        elif len(pending) >= FLUSH_LINES:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        lines = []
        for when, request_id, account, method, path, flag, operation, status, code, ms in pending:
            # The fields a client's bytes reach are checked (together: one
            # test of each kind); the request id, flag (one of the routing
            # table's), operation and code are ours and never need quotes
            # (test_observability checks every one there is); status and ms
            # are numbers.
            if not (_plain(account + method + path) and account and method and path):
                request_id, account, method, path, flag, operation, code = (
                    quote(request_id), quote(account), quote(method), quote(path), quote(flag),
                    quote(operation), quote(code))
            lines.append(f"{self._timestamp(when)} INFO {LOGGER} request_id={request_id} "
                         f"ak={account} method={method} path={path} flag={flag} op={operation} "
                         f"status={status} code={code} ms={ms:.2f}\n")
        try:
            sys.stderr.write("".join(lines))
            sys.stderr.flush()
        except (OSError, ValueError):  # stderr closed or gone: logging must not fail requests
            pass

    def _timestamp(self, when: float) -> str:
        """``YYYY-MM-DD HH:MM:SS,mmm`` in local time, like logging's default asctime."""
        second = int(when)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self._prefix},{int((when - second) * 1000):03d}"
