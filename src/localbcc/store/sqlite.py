"""SQLite's side of the store: the connection settings (WAL, pragmas, BEGIN
IMMEDIATE for writers), telling a busy database from a broken one, the WAL
checkpointer and the change counter the read cache compares."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from typing import Any, Iterator

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .prepared import Prepared, driver_of

log = logging.getLogger("localbcc.store")

#: Set in a connection's info right before a write transaction begins (the
#: begin hook takes it out again and says BEGIN IMMEDIATE).
WRITE_FLAG = "localbcc_write"
BUSY_TIMEOUT_MS = 10000
WAL_SIZE_LIMIT = 64 << 20


class WriteLockBusy(Exception):
    """Another process holds SQLite's write lock, so the event loop's next batch
    could not begin. Raised before the call it interrupts has written anything:
    the unit of work (store/unit.py) waits, serving other requests meanwhile,
    and runs it again."""


def use_wal(cur: sqlite3.Cursor) -> None:
    """Put the database in WAL mode (a no-op once it is). Processes opening a
    new database file together all ask for the switch, which needs the file to
    itself: SQLite refuses the losers at once, busy, without waiting for the
    busy timeout (it would deadlock). They try again until the timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def configure(engine: Engine, durability: str) -> None:
    """Every connection of ``engine``: WAL, the durability asked for, foreign
    keys, no checkpoints of its own (:class:`Checkpointer`), and writers that
    take the write lock when they begin."""
    synchronous = "FULL" if durability == "full" else "NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        use_wal(cur)
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")  # WAL truncated to this on rewind
        cur.execute("PRAGMA wal_autocheckpoint=0")  # a thread of its own does it: Checkpointer
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        # Writers take the lock up front, so two processes never deadlock
        # upgrading a read lock; readers use a plain deferred transaction.
        _BEGIN[conn.info.pop(WRITE_FLAG, False)].execute(conn, {})


_BEGIN = {True: Prepared(text("BEGIN IMMEDIATE")), False: Prepared(text("BEGIN"))}


@contextlib.contextmanager
def not_waiting(conn: Connection) -> Iterator[None]:
    """SQLite statements that fail at once (SQLITE_BUSY) instead of waiting up
    to the busy timeout for another connection's lock."""
    driver = driver_of(conn)
    driver.execute("PRAGMA busy_timeout=0")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def is_busy(exc: DBAPIError) -> bool:
    """SQLITE_BUSY (any extended code): another connection holds the lock."""
    return getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def drop_if_stuck(conn: Connection) -> None:
    """After a failed COMMIT SQLAlchemy counts the transaction as over, but
    SQLite keeps it open when the COMMIT was refused as busy, and with it the
    database's write lock: every later transaction of the process would fail
    and other processes could not write. Such a connection is dropped (closing
    it rolls back); the next transaction opens a new one."""
    try:
        stuck = driver_of(conn).in_transaction
    except Exception:  # noqa: BLE001 - no usable DBAPI connection: drop it too
        stuck = True
    if stuck:
        conn.invalidate()


class Checkpointer:
    """Copies the WAL back into the database file, from a thread of its own.

    By default SQLite checkpoints inside a committing transaction every 1000
    WAL pages, and with ``synchronous=NORMAL`` that includes fsyncs: each
    time, a stall in which the event loop answers nothing. Here no
    connection checkpoints by itself (``wal_autocheckpoint=0``); after a write
    this thread runs a PASSIVE checkpoint (it never blocks readers or writers)
    within ``INTERVAL`` seconds. A connection closing last checkpoints too, so
    processes that never start this thread (the CLI) leave no WAL behind.

    A checkpoint copies pages back but does not shorten the WAL: SQLite starts
    writing it from the beginning again only when a write transaction begins
    while every committed page has been copied. Under sustained writes the next
    batch always begins first, and the WAL would grow without end
    (docs/performance.md). So when it has passed ``RESTART_PAGES``, the
    writer itself, between two batches, copies the last few pages with a
    RESTART checkpoint (:meth:`restart`), which lets the next batch rewind it;
    ``journal_size_limit`` then truncates the file."""

    INTERVAL = 0.1
    RESTART_PAGES = 4096  # 16 MiB of WAL at SQLite's default 4 KiB pages

    def __init__(self, engine: Engine):
        self._engine = engine
        self._dirty = False
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.restart_due = False  # the WAL is long: the writer should call restart()

    def wrote(self) -> None:
        self._dirty = True
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="localbcc-checkpoint",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        conn = None
        while not self._stopping.wait(self.INTERVAL):
            if self._dirty:
                self._dirty = False
                conn = self.checkpoint(conn)
        if conn is not None:
            conn.close()

    def checkpoint(self, conn: Any = None) -> Any:
        """One PASSIVE checkpoint on ``conn`` (a raw connection; None: a new
        one), noting whether the WAL is long enough for :meth:`restart`.
        Returns the connection for the next one (None after a failure, which
        is tried again after the next write)."""
        try:
            if conn is None:
                conn = self._engine.raw_connection()
            _, pages, _ = conn.driver_connection.execute(
                "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.restart_due = pages >= self.RESTART_PAGES
        except Exception as exc:  # noqa: BLE001 - retried after the next write
            log.debug("WAL checkpoint failed: %s", exc)
            if conn is not None:
                conn.invalidate()
            return None
        return conn

    def restart(self, conn: Connection) -> None:
        """A RESTART checkpoint on the writer's connection, outside any
        transaction. Most pages were copied already by the thread, so this
        copies a few and syncs; it never waits (busy timeout 0): if another
        connection is checkpointing or reading old pages, it is tried again
        after the thread's next checkpoint."""
        self.restart_due = False
        try:
            with not_waiting(conn):
                driver_of(conn).execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        except Exception as exc:  # noqa: BLE001 - the WAL only stays long a while more
            log.debug("WAL restart failed: %s", exc)


class DataVersion:
    """SQLite's ``PRAGMA data_version`` on a connection of its own that never
    writes: the value changes whenever any other connection, of this process or
    another, commits. The read cache compares it before every lookup.

    On an event loop's thread one reading serves until the loop next polls for
    I/O (a callback scheduled with the reading forgets it: the loop runs it
    after its next poll). Requests only arrive through that poll, so every
    request handled meanwhile was received before the reading, and a commit
    acknowledged before such a request was sent is already counted in it."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._conn: Any = None  # a pooled DBAPI connection of SQLAlchemy's
        self._sqlite: Any = None  # the sqlite3 connection inside _conn
        self._lock = threading.Lock()
        self._memo: tuple[int, int] | None = None  # (thread, version) until the next poll

    def __call__(self) -> int | None:
        """The counter, or None if it cannot be read (the read then skips the cache)."""
        memo = self._memo
        if memo is not None and memo[0] == threading.get_ident():
            return memo[1]
        version = self._read()
        if version is not None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no event loop: read it every time
                return version
            self._memo = (threading.get_ident(), version)
            loop.call_soon(self._forget)
        return version

    def _forget(self) -> None:
        self._memo = None

    def _read(self) -> int | None:
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self._engine.raw_connection()
                    self._sqlite = self._conn.dbapi_connection
                return self._sqlite.execute("PRAGMA data_version").fetchone()[0]
            except Exception:  # noqa: BLE001 - e.g. the file went away; the read will say why
                if self._conn is not None:
                    self._conn.invalidate()
                    self._conn = None
                return None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
