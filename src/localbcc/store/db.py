"""The store: engines, connections and transactions, for SQLite and PostgreSQL.

Everything that speaks SQL lives in this package; the domain sees only
:class:`Store` (transactions) and :class:`localbcc.store.repo.Tx` (queries),
and the API runs every storage-bound call through ``store.unit.run``
(store/unit.py). Beside this module: urls.py (which databases), sqlite.py
(SQLite's settings, busy detection, checkpoints, change counter), batch.py
(group commit), migrate.py (the schema), failures.py (what a failure means).
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..errors import BceError, ErrorCode
from .batch import Batch, GroupCommit
from .cache import ReadCache
from .failures import DatabaseUnreachable, raise_if_unavailable
from .migrate import Migrations
from .repo import Tx
from .sqlite import WRITE_FLAG, Checkpointer, DataVersion, configure, drop_if_stuck
from .unit import UnitOfWork
from .urls import check_url, normalize_url, sqlite_path

log = logging.getLogger("localbcc.store")

#: Set to 1 (the test suite does, tests/conftest.py): a transaction on an
#: event loop's thread that no ``store.unit.run`` call started is an error.
CHECK_UNITS = "LOCALBCC_CHECK_UNITS"


class Store(GroupCommit, Migrations):
    """A database: its unit of work, its transactions (with group commit,
    batch.py), its schema (migrate.py); storage failures become BCE errors."""

    def __init__(self, url: str, *, durability: str = "normal", pool_size: int = 5,
                 max_overflow: int = 5, pool_timeout: float = 10.0,
                 check_units: bool | None = None):
        self.url = normalize_url(url)
        check_url(self.url)
        self.is_sqlite = self.url.startswith("sqlite")
        # SQLite: each thread keeps its connection open (a pool checkout costs
        # more than a query); see _connection().
        self._local = threading.local()
        self._kept: list[Connection] = []
        self._kept_lock = threading.Lock()
        self._batch: Batch | None = None  # SQLite group commit, see _tx()
        if self.is_sqlite:
            self.engine = create_engine(self.url)
            configure(self.engine, durability)
            self.reads = ReadCache(self._cache_version)
            self._data_version = DataVersion(self.engine)
            self._checkpoints: Checkpointer | None = Checkpointer(self.engine)
        else:
            # READ COMMITTED whatever the server's default: the domain's row locks
            # (repo.Tx) are written for it. pool_pre_ping replaces connections
            # that died with a database restart, so the service recovers by itself.
            self.engine = create_engine(
                self.url, pool_size=pool_size, max_overflow=max_overflow,
                pool_timeout=pool_timeout, pool_pre_ping=True,
                isolation_level="READ COMMITTED",
                connect_args={"connect_timeout": 5, "application_name": "localbcc"},
            )
            # No cheap way to learn that another process committed: no read cache.
            self.reads = ReadCache(None)
            self._checkpoints = None
        #: The one way to run a storage-bound call from the event loop:
        #: ``await store.unit.run(fn, *args)`` (store/unit.py).
        self.unit = UnitOfWork(self, pool_size + max_overflow)
        if check_units if check_units is not None else os.environ.get(CHECK_UNITS) == "1":
            self.read = self._checked(False)  # type: ignore[method-assign]
            self.write = self._checked(True)  # type: ignore[method-assign]

    # -- transactions ---------------------------------------------------------

    def read(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx(write=False)

    def write(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx(write=True)

    def _tx(self, write: bool) -> contextlib.AbstractContextManager[Tx]:
        """One transaction: on SQLite, on a thread running an event loop, a
        savepoint in the loop turn's batch (group commit, batch.py), else a
        transaction of its own."""
        try:
            batch = self._batch_for(write)
        except DBAPIError as exc:
            raise_if_unavailable(exc)
            raise
        return batch if batch is not None else self._own_tx(write)

    @contextlib.contextmanager
    def _own_tx(self, write: bool) -> Iterator[Tx]:
        """A transaction of its own, committed when the block ends."""
        try:
            with self._connection() as conn:
                conn.info[WRITE_FLAG] = write  # read by the SQLite begin hook
                try:
                    with conn.begin():
                        yield Tx(conn, self.is_sqlite)
                except DBAPIError:
                    if self.is_sqlite:
                        drop_if_stuck(conn)
                    raise
            if write and self._checkpoints is not None:
                self._checkpoints.wrote()
        except DBAPIError as exc:
            raise_if_unavailable(exc)
            raise
        except PoolTimeout:
            log.warning("storage unavailable: no database connection free within the pool timeout")
            raise BceError(ErrorCode.ServiceUnavailable) from None

    def _checked(self, write: bool) -> Callable[[], contextlib.AbstractContextManager[Tx]]:
        """read() or write() refusing what would bypass the unit of work, on a
        thread running an event loop outside ``unit.run``: a write on SQLite
        (nothing would wait for its group commit before answering), any
        transaction on a network database (it would block the loop)."""
        def tx() -> contextlib.AbstractContextManager[Tx]:
            if (write or not self.is_sqlite) and self.unit.depth == 0 and _on_event_loop():
                raise AssertionError("a transaction on the event loop outside store.unit.run")
            return self._tx(write)
        return tx

    def _cache_version(self) -> int | None:
        """The read cache's change counter; None (no caching) while a batch
        is open: its reads see writes that are not committed yet."""
        return None if self._batch is not None else self._data_version()

    def _connection(self) -> contextlib.AbstractContextManager[Connection]:
        """A connection for one transaction. SQLite: this thread's own, kept
        open between transactions (a nested transaction gets a pooled one);
        PostgreSQL: one from the pool, returned when the transaction ends."""
        if not self.is_sqlite:
            return self.engine.connect()
        conn = self._kept_connection()
        if conn.in_transaction():
            return self.engine.connect()
        return contextlib.nullcontext(conn)

    def _kept_connection(self) -> Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._local.conn = self.engine.connect()
            with self._kept_lock:
                self._kept.append(conn)
        return conn

    # -- the database file ----------------------------------------------------

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file; None on PostgreSQL or for an in-memory database."""
        path = sqlite_path(self.url)
        return Path(path) if path is not None else None

    def require_writable(self) -> None:
        """SQLite: refuse a database this process cannot write (a read-only
        mount, or no permission), which would otherwise serve reads and answer
        every write 503. The directory must be writable too: the WAL and its
        index live beside the database file."""
        path = self.sqlite_file
        if path is None:
            return
        for target in (path, path.parent):
            if target.exists() and not os.access(target, os.W_OK):
                raise DatabaseUnreachable(f"cannot write to {target} (a read-only file system, "
                                          f"or no permission): localbcc needs to write there")

    def dispose(self) -> None:
        self.unit.close()
        self._commit_batch()
        if self._checkpoints is not None:
            self._checkpoints.stop()
            self._data_version.close()
        self.reads.close()
        with self._kept_lock:
            kept, self._kept = self._kept, []
        for conn in kept:
            conn.close()
        self.engine.dispose()


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
