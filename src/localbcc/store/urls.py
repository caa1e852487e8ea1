"""Database URLs: which ones localbcc accepts, and the SQLite file's."""
from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .failures import DatabaseUnreachable

#: The SQLite database's file name in the data directory.
DB_FILE = "localbcc.db"

_DRIVERS = {"sqlite", "sqlite+pysqlite", "postgresql+psycopg"}  # plain postgresql:// is normalized


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs: use the psycopg 3 driver for them."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def check_url(url: str) -> None:
    """Refuse, in one line, a URL that names neither SQLite nor PostgreSQL with
    the driver localbcc installs (else: a traceback from deep in SQLAlchemy)."""
    try:
        parsed = make_url(url)
    except ArgumentError:  # not echoed: it may hold a password
        raise DatabaseUnreachable("cannot use the database URL: it is not a URL "
                                  "(e.g. postgresql://user:password@host:5432/dbname)") from None
    if parsed.drivername not in _DRIVERS:
        raise DatabaseUnreachable(
            f"cannot use the database URL {safe_url(url)}: "
            "localbcc stores its data in SQLite (--data-dir) or PostgreSQL "
            "(postgresql://user:password@host:5432/dbname)")


def safe_url(url: str) -> str:
    """The URL as it may be shown: without its password."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / DB_FILE}"


def sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database
    return path if path and path != ":memory:" else None
