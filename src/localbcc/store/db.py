"""Engines, transactions and the schema-version check, for SQLite and PostgreSQL.

Everything that speaks SQL lives in this package; the domain sees only
:class:`Store` (transactions) and :class:`localbcc.store.repo.Tx` (queries).
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..errors import BceError, ErrorCode
from .cache import ReadCache
from .prepared import Prepared, driver_of
from .repo import Tx, advisory_key

log = logging.getLogger("localbcc.store")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: The Alembic revision this code expects; a test checks it is the head.
SCHEMA_REVISION = "0002"


class SchemaMismatch(RuntimeError):
    """The database cannot be used as it is: its schema revision differs from
    the code's, or (:class:`DatabaseUnreachable`) it cannot be reached. The
    message says what to do."""


class DatabaseUnreachable(SchemaMismatch):
    """No connection to the database (at start-up or in a `db` command)."""


class WriteLockBusy(Exception):
    """Another process holds SQLite's write lock, so the event loop's next batch
    could not begin. Raised before the call it interrupts has written anything:
    ``Context.run`` waits (serving other requests meanwhile) and runs it again."""


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs: use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _check_url(url: str) -> None:
    """Refuse, in one line, a URL that names neither SQLite nor PostgreSQL with
    the driver localbcc installs (else: a traceback from deep in SQLAlchemy)."""
    try:
        parsed = make_url(url)
    except ArgumentError:  # not echoed: it may hold a password
        raise DatabaseUnreachable("cannot use the database URL: it is not a URL "
                                  "(e.g. postgresql://user:password@host:5432/dbname)") from None
    if parsed.drivername not in _DRIVERS:
        raise DatabaseUnreachable(
            f"cannot use the database URL {parsed.render_as_string(hide_password=True)}: "
            "localbcc stores its data in SQLite (--data-dir) or PostgreSQL "
            "(postgresql://user:password@host:5432/dbname)")


_DRIVERS = {"sqlite", "sqlite+pysqlite", "postgresql+psycopg"}  # plain postgresql:// is normalized


#: The SQLite database's file name in the data directory.
DB_FILE = "localbcc.db"


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / DB_FILE}"


class Store:
    """A database: opens transactions and maps storage failures to BCE errors."""

    def __init__(self, url: str, *, durability: str = "normal", pool_size: int = 5,
                 max_overflow: int = 5, pool_timeout: float = 10.0):
        self.url = normalize_url(url)
        _check_url(self.url)
        self.is_sqlite = self.url.startswith("sqlite")
        # SQLite: each thread keeps its connection open (a pool checkout costs
        # more than a query); see _connection().
        self._local = threading.local()
        self._kept: list[Connection] = []
        self._kept_lock = threading.Lock()
        self._batch: _Batch | None = None  # SQLite group commit, see _tx()
        if self.is_sqlite:
            self.engine = create_engine(self.url)
            _setup_sqlite(self.engine, durability)
            self.reads = ReadCache(self._cache_version)
            self._data_version = _DataVersion(self.engine)
            self._checkpoints: _Checkpointer | None = _Checkpointer(self.engine)
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

    # -- transactions ---------------------------------------------------------

    def read(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx(write=False)

    def write(self) -> contextlib.AbstractContextManager[Tx]:
        return self._tx(write=True)

    def _tx(self, write: bool) -> contextlib.AbstractContextManager[Tx]:
        """One transaction. SQLite, on a thread running an event loop (the
        server's): group commit. The first write of a loop turn opens a batch,
        one ``BEGIN IMMEDIATE`` transaction; every transaction of the thread
        until the turn ends is a SAVEPOINT in it (a failing one rolls back only
        its own changes), and one COMMIT at the end of the turn makes them all
        durable. ``Context.run`` answers only after that commit (:meth:`durable`)."""
        try:
            batch = self._batch_for(write)
        except DBAPIError as exc:
            _raise_if_unavailable(exc)
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
                        _drop_if_stuck(conn)
                    raise
            if write and self._checkpoints is not None:
                self._checkpoints.wrote()
        except DBAPIError as exc:
            _raise_if_unavailable(exc)
            raise
        except PoolTimeout:
            log.warning("storage unavailable: no database connection free within the pool timeout")
            raise BceError(ErrorCode.ServiceUnavailable) from None

    def _batch_for(self, write: bool) -> _Batch | None:
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
        self._batch = _Batch(conn, loop)
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
            _drop_if_stuck(batch.conn)
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

    # -- schema ---------------------------------------------------------------

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite database file; None on PostgreSQL or for an in-memory database."""
        path = make_url(self.url).database if self.is_sqlite else None
        return Path(path) if path and path != ":memory:" else None

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

    def is_empty(self) -> bool:
        with self.engine.connect() as conn:
            return not inspect(conn).get_table_names()

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations (imported lazily: it costs start-up time).
        Concurrent upgrades (several servers starting at once) take turns."""
        from alembic import command

        with self.reachable(), self.schema_lock():
            rev = self.current_revision()
            if rev is not None and rev not in self.known_revisions():
                raise SchemaMismatch(_newer(rev))
            if rev is None and not self.is_empty():  # never add our tables to another's database
                raise SchemaMismatch(_foreign())
            command.upgrade(self._alembic_config(), revision)

    @contextlib.contextmanager
    def reachable(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as exc:
            detail = str(exc.orig if exc.orig is not None else exc).strip().splitlines()
            raise DatabaseUnreachable(
                f"cannot use the database {make_url(self.url).render_as_string(hide_password=True)}: "
                f"{detail[0] if detail else type(exc).__name__}") from None

    def known_revisions(self) -> list[str]:
        """Every revision this code has migrations for, oldest first."""
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self._alembic_config())
        return [s.revision for s in reversed(list(script.walk_revisions()))]

    @contextlib.contextmanager
    def schema_lock(self) -> Iterator[None]:
        """Serialise schema checks and migrations between processes: a
        PostgreSQL advisory lock, or a lock file beside the SQLite database."""
        if self.is_sqlite:
            path = make_url(self.url).database
            if not path or path == ":memory:":
                yield
                return
            with open(f"{path}.lock", "a") as f:
                fcntl.flock(f, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f, fcntl.LOCK_UN)
            return
        # A transaction-scoped lock, held by a transaction kept open meanwhile:
        # released however this ends, and safe behind a transaction pooler.
        # Its connection is not from the pool, which the work under the lock
        # needs (a pool may have a single connection).
        from sqlalchemy.pool import NullPool

        locker = create_engine(self.url, poolclass=NullPool, connect_args={"connect_timeout": 5})
        try:
            with locker.connect() as conn, conn.begin():
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key("schema")})
                yield
        finally:
            locker.dispose()

    def _alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["engine"] = self.engine
        return cfg

    def prepare(self) -> None:
        """Create the schema on an empty database; refuse one of another revision."""
        with self.reachable():
            if self.current_revision() == SCHEMA_REVISION:  # the common case: no lock, no Alembic
                return
            with self.schema_lock():
                rev = self.current_revision()
                if rev is None and self.is_empty():
                    self._create_schema()
                    return
            self.check()

    def _create_schema(self) -> None:
        """Give an empty database the current schema: schema.py's tables, stamped
        with SCHEMA_REVISION as Alembic would. The migrations build exactly these
        tables (tests/store/test_schema.py and tests/unit/test_fastpath.py check
        it); importing Alembic to replay them would cost a fifth of a second of
        start-up (docs/performance.md). Existing databases still go through
        Alembic (`localbcc db upgrade`)."""
        from sqlalchemy import Column, MetaData, PrimaryKeyConstraint, String, Table

        from .schema import metadata

        alembic_version = Table(  # as Alembic defines it
            "alembic_version", MetaData(), Column("version_num", String(32), nullable=False),
            PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
        with self.engine.begin() as conn:
            metadata.create_all(conn)
            alembic_version.create(conn)
            conn.execute(alembic_version.insert().values(version_num=SCHEMA_REVISION))
        log.info("created the database schema, revision %s", SCHEMA_REVISION)
        log.debug("schema.py tables created without Alembic: %s", ", ".join(metadata.tables))

    def check(self) -> None:
        """Raise :class:`SchemaMismatch`, saying what to do, unless the schema is current."""
        with self.reachable():
            self._check()

    def _check(self) -> None:
        rev = self.current_revision()
        if rev == SCHEMA_REVISION:
            return
        if rev is None:
            if self.is_empty():
                raise SchemaMismatch(f"the database is empty; run `localbcc db upgrade` (or "
                                     f"`localbcc serve`, which creates the schema)")
            raise SchemaMismatch(_foreign())
        if rev in self.known_revisions():
            raise SchemaMismatch(
                f"the database schema is at revision {rev}, older than this localbcc's "
                f"{SCHEMA_REVISION}; run `localbcc db upgrade` with the same --database-url "
                f"(or LOCALBCC_DATABASE_URL / --data-dir) first")
        raise SchemaMismatch(_newer(rev))

    def dispose(self) -> None:
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


def _newer(rev: str) -> str:
    return (f"the database schema is at revision {rev}, which this localbcc does not know "
            f"(it needs {SCHEMA_REVISION}): it was written by a newer localbcc; run that "
            f"version, or upgrade this installation")


def _foreign() -> str:
    return ("the database has tables but no localbcc schema revision (no alembic_version "
            "table): it is not a localbcc database; point --data-dir (or --database-url) "
            "at an empty or a localbcc one")


def describe_error(exc: BaseException) -> str:
    """``Type: first line of its message`` of a database error's cause, for a log line."""
    cause = getattr(exc, "orig", None) or exc
    detail = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {detail[0] if detail else ''}"


def _drop_if_stuck(conn: Connection) -> None:
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


@contextlib.contextmanager
def _not_waiting(conn: Connection) -> Iterator[None]:
    """SQLite statements that fail at once (SQLITE_BUSY) instead of waiting up
    to the busy timeout for another connection's lock."""
    driver = driver_of(conn)
    driver.execute("PRAGMA busy_timeout=0")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _is_busy(exc: DBAPIError) -> bool:
    """SQLITE_BUSY (any extended code): another connection holds the lock."""
    return getattr(exc.orig, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


def _is_unavailable(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return True
    name = type(exc.orig).__name__ if exc.orig is not None else ""
    return name in {"OperationalError", "InterfaceError", "AdminShutdown", "ConnectionTimeout"}


def _raise_if_unavailable(exc: DBAPIError) -> None:
    """ServiceUnavailable (logged) for a database that cannot be reached or
    used right now; other errors (bugs, constraints) are the caller's to raise."""
    if _is_unavailable(exc):
        log.warning("storage unavailable: %s", describe_error(exc))
        raise BceError(ErrorCode.ServiceUnavailable) from None


#: Set in a connection's info right before a write transaction begins (the
#: SQLite begin hook takes it out again and says BEGIN IMMEDIATE).
WRITE_FLAG = "localbcc_write"
BUSY_TIMEOUT_MS = 10000
WAL_SIZE_LIMIT = 64 << 20


def _use_wal(cur: sqlite3.Cursor) -> None:
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


def _setup_sqlite(engine: Engine, durability: str) -> None:
    synchronous = "FULL" if durability == "full" else "NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _use_wal(cur)
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")  # WAL truncated to this on rewind
        cur.execute("PRAGMA wal_autocheckpoint=0")  # a thread of its own does it: _Checkpointer
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        # Writers take the lock up front, so two processes never deadlock
        # upgrading a read lock; readers use a plain deferred transaction.
        _BEGIN[conn.info.pop(WRITE_FLAG, False)].execute(conn, {})


_BEGIN = {True: Prepared(text("BEGIN IMMEDIATE")), False: Prepared(text("BEGIN"))}


_SAVEPOINT = Prepared(text("SAVEPOINT localbcc"))
_RELEASE = Prepared(text("RELEASE localbcc"))
_ROLLBACK_TO = Prepared(text("ROLLBACK TO localbcc"))


class _Batch:
    """The transactions of one event-loop turn: one SQLite transaction, one
    SAVEPOINT each (nested ones too: SQLite resolves a repeated name to the
    innermost), committed together by Store._commit_batch."""

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
            with _not_waiting(conn):
                conn.info[WRITE_FLAG] = True
                self.transaction = conn.begin()
        except OperationalError as exc:
            if _is_busy(exc):
                raise WriteLockBusy() from None
            raise

    # One transaction of the batch: ``with batch as tx`` (Store._tx), a
    # class rather than a generator-based context manager, which costs more
    # than the savepoint itself (docs/performance.md).

    def __enter__(self) -> Tx:
        try:
            _SAVEPOINT.execute(self.conn, {}, self.driver)
        except DBAPIError as exc:
            _raise_if_unavailable(exc)
            raise
        return Tx(self.conn, True, self.driver)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is not None:
            self._roll_back_savepoint()
            if isinstance(exc, DBAPIError):
                _raise_if_unavailable(exc)
            return  # the exception goes on
        try:
            _RELEASE.execute(self.conn, {}, self.driver)
        except BaseException as err:  # its changes cannot be told apart from the batch's now
            self.broken = True
            if isinstance(err, DBAPIError):
                _raise_if_unavailable(err)
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


class _Checkpointer:
    """Copies the WAL back into the database file, from a thread of its own.

    By default SQLite checkpoints inside a committing transaction every 1000
    WAL pages, and with ``synchronous=NORMAL`` that includes fsyncs: each
    time, milliseconds in which the event loop answers nothing. Here no
    connection checkpoints by itself (``wal_autocheckpoint=0``); after a write
    this thread runs a PASSIVE checkpoint (it never blocks readers or writers)
    within ``INTERVAL`` seconds. A connection closing last checkpoints too, so
    processes that never start this thread (the CLI) leave no WAL behind.

    A checkpoint copies pages back but does not shorten the WAL: SQLite starts
    writing it from the beginning again only when a write transaction begins
    while every committed page has been copied. Under sustained writes the next
    batch always begins first, and the WAL would grow without end (tens of MB a
    minute in the benchmark). So when it has passed ``RESTART_PAGES``, the
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
            with _not_waiting(conn):
                driver_of(conn).execute("PRAGMA wal_checkpoint(RESTART)").fetchall()
        except Exception as exc:  # noqa: BLE001 - the WAL only stays long a while more
            log.debug("WAL restart failed: %s", exc)


class _DataVersion:
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
