"""Engines, transactions and the schema-version check, for SQLite and PostgreSQL.

Everything that speaks SQL lives in this package; the domain sees only
:class:`Store` (transactions) and :class:`localbcc.store.repo.Tx` (queries).
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ..errors import BceError, ErrorCode
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


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs: use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'localbcc.db'}"


class Store:
    """A database: opens transactions and maps storage failures to BCE errors."""

    def __init__(self, url: str, *, durability: str = "normal", pool_size: int = 5,
                 max_overflow: int = 5, pool_timeout: float = 10.0):
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = create_engine(self.url)
            _setup_sqlite(self.engine, durability)
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

    # -- transactions ---------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[Tx]:
        with self._tx(write=False) as tx:
            yield tx

    @contextlib.contextmanager
    def write(self) -> Iterator[Tx]:
        with self._tx(write=True) as tx:
            yield tx

    @contextlib.contextmanager
    def _tx(self, write: bool) -> Iterator[Tx]:
        try:
            with self.engine.connect() as conn:
                if write:
                    conn = conn.execution_options(localbcc_write=True)
                with conn.begin():
                    yield Tx(conn, self.is_sqlite)
        except DBAPIError as exc:
            if not _is_unavailable(exc):
                raise
            cause = exc.orig if exc.orig is not None else exc
            detail = str(cause).strip().splitlines()
            log.warning("storage unavailable: %s: %s", type(cause).__name__,
                        detail[0] if detail else "")
            raise BceError(ErrorCode.ServiceUnavailable) from None
        except PoolTimeout:
            log.warning("storage unavailable: no database connection free within the pool timeout")
            raise BceError(ErrorCode.ServiceUnavailable) from None

    # -- schema ---------------------------------------------------------------

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()

    def is_empty(self) -> bool:
        with self.engine.connect() as conn:
            return not inspect(conn).get_table_names()

    def upgrade(self, revision: str = "head") -> None:
        """Apply Alembic migrations (imported lazily: it costs start-up time).
        Concurrent upgrades (several servers starting at once) take turns."""
        from alembic import command

        with self.reachable():
            rev = self.current_revision()
            if rev is not None and rev not in self.known_revisions():
                raise SchemaMismatch(_newer(rev))
            with self.schema_lock():
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
                    from alembic import command

                    command.upgrade(self._alembic_config(), "head")
                    return
            self.check()

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
            raise SchemaMismatch(
                "the database has tables but no localbcc schema revision (no alembic_version "
                "table): it is not a localbcc database; point --database-url at an empty one")
        if rev in self.known_revisions():
            raise SchemaMismatch(
                f"the database schema is at revision {rev}, older than this localbcc's "
                f"{SCHEMA_REVISION}; run `localbcc db upgrade` with the same --database-url "
                f"(or LOCALBCC_DATABASE_URL / --data-dir) first")
        raise SchemaMismatch(_newer(rev))

    def dispose(self) -> None:
        self.engine.dispose()


def _newer(rev: str) -> str:
    return (f"the database schema is at revision {rev}, which this localbcc does not know "
            f"(it needs {SCHEMA_REVISION}): it was written by a newer localbcc; run that "
            f"version, or upgrade this installation")


def _is_unavailable(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError) or exc.connection_invalidated:
        return True
    name = type(exc.orig).__name__ if exc.orig is not None else ""
    return name in {"OperationalError", "InterfaceError", "AdminShutdown", "ConnectionTimeout"}


def _setup_sqlite(engine: Engine, durability: str) -> None:
    synchronous = "FULL" if durability == "full" else "NORMAL"

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection):
        # Writers take the lock up front, so two processes never deadlock
        # upgrading a read lock; readers use a plain deferred transaction.
        write = conn.get_execution_options().get("localbcc_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
