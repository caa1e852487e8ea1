"""Group commit: on the thread running the server's event loop, the SQLite
transactions of one loop turn share one transaction and one COMMIT.

The first write of a turn opens a batch, one ``BEGIN IMMEDIATE`` transaction;
every transaction of the thread until the turn ends is a SAVEPOINT in it (a
failing one rolls back only its own changes), and one COMMIT at the end of
the turn makes them all durable. The unit of work (store/unit.py) answers a
call only after that commit (:meth:`GroupCommit.durable`). Reads and
PostgreSQL open no batch; a read joins an open one (it sees its writes)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from ..errors import BceError, ErrorCode
from .failures import describe_error, raise_if_unavailable
from .prepared import Prepared, driver_of
from .repo import Tx
from .sqlite import WRITE_FLAG, Checkpointer, WriteLockBusy, drop_if_stuck, is_busy, not_waiting

log = logging.getLogger("localbcc.store")

_SAVEPOINT = Prepared(text("SAVEPOINT localbcc"))
_RELEASE = Prepared(text("RELEASE localbcc"))
_ROLLBACK_TO = Prepared(text("ROLLBACK TO localbcc"))


class GroupCommit:
    """The store's batches (a part of :class:`localbcc.store.db.Store`)."""

    _batch: Batch | None  # the open batch, if any
    _checkpoints: Checkpointer | None  # SQLite's; None: PostgreSQL, which batches nothing

    def _kept_connection(self) -> Connection:
        raise NotImplementedError  # Store's: this thread's own connection

    def _batch_for(self, write: bool) -> Batch | None:
        """The open batch this thread's transaction joins, or a new one for a
        write on an event loop's thread; None: a transaction of its own."""
        batch = self._batch
        if batch is not None:
            if batch.thread != threading.get_ident():
                return None
            if batch.broken:  # SQLite rolled it back: a savepoint now would commit by itself
                raise BceError(ErrorCode.ServiceUnavailable)
            return batch
        if not write or self._checkpoints is None:  # reads, and PostgreSQL: no batch
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (the CLI, tests, worker threads)
            return None
        conn = self._kept_connection()
        if conn.in_transaction():  # a write inside a transaction of its own: no batch
            return None
        self._batch = Batch(conn, loop)
        loop.call_soon(self._commit_batch)
        return self._batch

    def _commit_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        try:
            if batch.broken:
                batch.transaction.rollback()
            else:
                batch.transaction.commit()
        except Exception as exc:  # noqa: BLE001 - whatever it is, every waiter must hear of it
            batch.broken = True
            log.warning("storage unavailable: group commit failed: %s", describe_error(exc))
            with contextlib.suppress(Exception):
                batch.transaction.rollback()
            drop_if_stuck(batch.conn)
        finally:
            batch.finish()
        checkpoints = self._checkpoints  # batches are SQLite's, and so are checkpoints
        if checkpoints is not None:
            checkpoints.wrote()
            if checkpoints.restart_due and not batch.broken:
                checkpoints.restart(batch.conn)

    async def durable(self) -> None:
        """Return once every transaction this thread ran so far is committed
        (group commit); raise ServiceUnavailable if its batch failed to commit."""
        batch = self._batch
        if batch is None or batch.thread != threading.get_ident():
            return
        await batch.committed()
        if batch.broken:
            raise BceError(ErrorCode.ServiceUnavailable)


class Batch:
    """The transactions of one event-loop turn: one SQLite transaction, one
    SAVEPOINT each (nested ones too: SQLite resolves a repeated name to the
    innermost), committed together by GroupCommit._commit_batch."""

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop):
        self.conn = conn
        self.driver = driver_of(conn)  # sqlite3's connection, for Prepared statements
        self.thread = threading.get_ident()
        self.loop = loop
        self.waiters: list[asyncio.Future] = []
        self.broken = False  # a failure undid more than one savepoint: commit nothing
        # BEGIN IMMEDIATE, without waiting for the lock: SQLite would wait on
        # this thread, the event loop's, stalling every request for as long.
        try:
            with not_waiting(conn):
                conn.info[WRITE_FLAG] = True
                self.transaction = conn.begin()
        except OperationalError as exc:
            if is_busy(exc):
                raise WriteLockBusy() from None
            raise

    # One transaction of the batch: ``with batch as tx`` (Store._tx), a
    # class rather than a generator-based context manager, which costs more
    # than the savepoint itself (docs/performance.md).

    def __enter__(self) -> Tx:
        try:
            _SAVEPOINT.execute(self.conn, {}, self.driver)
        except DBAPIError as exc:
            raise_if_unavailable(exc)
            raise
        return Tx(self.conn, True, self.driver)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self._roll_back_savepoint()
            if isinstance(exc, DBAPIError):
                raise_if_unavailable(exc)
            return  # the exception goes on
        try:
            _RELEASE.execute(self.conn, {}, self.driver)
        except BaseException as err:  # its changes cannot be told apart from the batch's now
            self.broken = True
            if isinstance(err, DBAPIError):
                raise_if_unavailable(err)
            raise

    def _roll_back_savepoint(self) -> None:
        try:
            _ROLLBACK_TO.execute(self.conn, {}, self.driver)
            _RELEASE.execute(self.conn, {}, self.driver)
        except Exception:  # noqa: BLE001 - e.g. SQLite already rolled the whole batch back
            self.broken = True

    def committed(self) -> asyncio.Future:
        """A future of the caller's own, done once the batch is committed (or
        failed): one waiter's cancellation must not cancel the others'."""
        waiter = self.loop.create_future()
        self.waiters.append(waiter)
        return waiter

    def finish(self) -> None:
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)
