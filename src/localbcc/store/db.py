"""Engines, transactions and the schema-version check, for SQLite and PostgreSQL.

Everything that speaks SQL lives in this package; the domain sees only
:class:`Store` (transactions) and :class:`localbcc.store.repo.Tx` (queries).
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from ..errors import BceError, ErrorCode
from .repo import Tx

log = logging.getLogger("localbcc.store")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: The Alembic revision this code expects; a test checks it is the head.
SCHEMA_REVISION = "0002"


class SchemaMismatch(RuntimeError):
    """The database's schema revision differs from the code's."""


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
            self.engine = create_engine(
                self.url, pool_size=pool_size, max_overflow=max_overflow,
                pool_timeout=pool_timeout, pool_pre_ping=True,
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
        except (OperationalError, DBAPIError) as exc:
            if isinstance(exc, DBAPIError) and not _is_unavailable(exc):
                raise
            log.warning("storage unavailable: %s", type(exc.orig).__name__ if exc.orig else exc)
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
        """Apply Alembic migrations (imported lazily: it costs start-up time)."""
        from alembic import command

        command.upgrade(self._alembic_config(), revision)

    def _alembic_config(self):
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        cfg.attributes["engine"] = self.engine
        return cfg

    def prepare(self) -> None:
        """Create the schema on an empty database; refuse one of another revision."""
        rev = self.current_revision()
        if rev is None and self.is_empty():
            self.upgrade()
            return
        if rev != SCHEMA_REVISION:
            raise SchemaMismatch(
                f"database schema is at revision {rev or 'none'}, this localbcc needs "
                f"{SCHEMA_REVISION}; run `localbcc db upgrade` (with the same "
                f"--database-url) or use a matching localbcc version"
            )

    def dispose(self) -> None:
        self.engine.dispose()


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
