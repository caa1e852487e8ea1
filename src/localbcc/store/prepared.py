"""Statements built once and run straight on the DBAPI cursor.

SQLAlchemy Core spends far longer per statement building it, computing its
cache key and running its execution machinery than SQLite takes to answer the
query itself (the figures are in docs/performance.md). For the queries on
the hot path (docs/performance.md), a :class:`Prepared` holds one SQLAlchemy
statement, written once at import time with named ``bindparam``\\ s, compiles
it once per dialect, and runs the SQL text on the connection's own DBAPI
cursor, inside the transaction SQLAlchemy opened. The SQL still comes from
SQLAlchemy, so it stays dialect-neutral (SQLite and PostgreSQL); only the
per-execution overhead is gone. Columns come back as the driver returns them,
which suits this schema (integers, floats and text only).
"""
from __future__ import annotations

from typing import Any, cast

from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


def driver_of(conn: Connection) -> Any:
    """The driver's own connection (sqlite3's or psycopg's) under a SQLAlchemy one."""
    return conn.connection.dbapi_connection


class Prepared:
    """One statement with named bind parameters; :meth:`execute` returns the DBAPI cursor."""

    __slots__ = ("statement", "_compiled")

    def __init__(self, statement: ClauseElement):
        self.statement = statement
        # (dialect name, paramstyle) -> (SQL text, parameter names in order or None,
        # values of the parameters SQLAlchemy added itself)
        self._compiled: dict[tuple[str, str], tuple[str, tuple[str, ...] | None, dict]] = {}

    def _compile(self, dialect: Dialect) -> tuple[str, tuple[str, ...] | None, dict]:
        key = (dialect.name, dialect.paramstyle)
        found = self._compiled.get(key)
        if found is None:  # once per statement and dialect
            compiled = cast(SQLCompiler, self.statement.compile(dialect=dialect))
            names = tuple(compiled.positiontup or ()) if compiled.positional else None
            # Parameters SQLAlchemy adds itself (e.g. SQLite's OFFSET) keep their values.
            fixed = {name: value for name, value in compiled.params.items()
                     if not compiled.binds[name].required}
            found = (compiled.string, names, fixed)
            self._compiled[key] = found
        return found

    def execute(self, conn: Connection, params: dict[str, Any], driver: Any = None) -> Any:
        """Run on ``conn``; ``driver`` is its :func:`driver_of`, if the caller
        has it at hand (a transaction looks it up once, not per statement)."""
        dialect = conn.dialect
        sql, names, fixed = self._compile(dialect)
        if fixed:
            params = fixed | params
        args = tuple([params[name] for name in names]) if names is not None else params
        if driver is None:
            driver = driver_of(conn)
        try:
            # Both drivers offer Connection.execute: a new cursor, executed, in one call.
            return driver.execute(sql, args)
        except dialect.loaded_dbapi.Error as exc:
            # Report it as SQLAlchemy would have, so callers handle one kind of error.
            gone = dialect.is_disconnect(exc, driver, None)
            if gone:
                conn.invalidate(exc)
            raise DBAPIError.instance(sql, args, exc, dialect.loaded_dbapi.Error,
                                      connection_invalidated=gone, dialect=dialect) from exc
