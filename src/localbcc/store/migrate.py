"""The schema: created on an empty database, upgraded with Alembic, checked
against the revision this code needs, and serialised between processes."""
from __future__ import annotations

import contextlib
import fcntl
import logging
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from .failures import DatabaseUnreachable, SchemaMismatch
from .repo import advisory_key
from .urls import safe_url, sqlite_path

log = logging.getLogger("localbcc.store")

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
#: The Alembic revision this code expects; a test checks it is the head.
SCHEMA_REVISION = "0002"


class Migrations:
    """The store's schema methods (a part of :class:`localbcc.store.db.Store`)."""

    url: str
    is_sqlite: bool
    engine: Engine

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
                f"cannot use the database {safe_url(self.url)}: "
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
            path = sqlite_path(self.url)
            if path is None:
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

    def _alembic_config(self) -> Any:
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
        it); importing Alembic to replay them would slow start-up
        (docs/performance.md). Existing databases still go through Alembic
        (`localbcc db upgrade`)."""
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


def _newer(rev: str) -> str:
    return (f"the database schema is at revision {rev}, which this localbcc does not know "
            f"(it needs {SCHEMA_REVISION}): it was written by a newer localbcc; run that "
            f"version, or upgrade this installation")


def _foreign() -> str:
    return ("the database has tables but no localbcc schema revision (no alembic_version "
            "table): it is not a localbcc database; point --data-dir (or --database-url) "
            "at an empty or a localbcc one")
