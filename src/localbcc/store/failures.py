"""What a storage failure means to the caller: a database that cannot be used
at start-up (:class:`SchemaMismatch`, :class:`DatabaseUnreachable`), and at
run time a database that cannot be reached or used right now, answered
``503 ServiceUnavailable`` (:func:`raise_if_unavailable`)."""
from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, OperationalError

from ..errors import BceError, ErrorCode

log = logging.getLogger("localbcc.store")


class SchemaMismatch(RuntimeError):
    """The database cannot be used as it is: its schema revision differs from
    the code's, or (:class:`DatabaseUnreachable`) it cannot be reached. The
    message says what to do."""


class DatabaseUnreachable(SchemaMismatch):
    """No connection to the database (at start-up or in a `db` command)."""


def describe_error(exc: BaseException) -> str:
    """``Type: first line of its message`` of a database error's cause, for a log line."""
    cause = getattr(exc, "orig", None) or exc
    detail = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {detail[0] if detail else ''}"


def is_unavailable(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return True
    name = type(exc.orig).__name__ if exc.orig is not None else ""
    return name in {"OperationalError", "InterfaceError", "AdminShutdown", "ConnectionTimeout"}


def raise_if_unavailable(exc: DBAPIError) -> None:
    """ServiceUnavailable (logged) for a database that cannot be reached or
    used right now; other errors (bugs, constraints) are the caller's to raise."""
    if is_unavailable(exc):
        log.warning("storage unavailable: %s", describe_error(exc))
        raise BceError(ErrorCode.ServiceUnavailable) from None
