"""Which process serves the SSH endpoints of a database: the holder of a lock.

Two locks, both tried without blocking:

* ``serve``: held for as long as a process serves SSH.
* ``boot``: held by a process while it decides and, if it won ``serve``,
  while it opens the endpoints of the instances that read Running. Another
  process that finds ``serve`` taken only concludes "someone else serves, and
  is ready" once it holds ``boot`` itself, so no process of the database
  answers ``/healthz`` before the endpoints are reachable.

SQLite: ``flock`` on files beside the database file (released by the kernel
when the process dies). PostgreSQL: session advisory locks on a dedicated
connection (released when the session ends).
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

log = logging.getLogger("localbcc.ssh")


def _pg_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"localbcc-ssh-{name}".encode()).digest()[:8],
                          "big", signed=True)


class ServeLocks:
    """try_lock/unlock by name ("serve", "boot"); all calls are quick and
    non-blocking (run them off the event loop on PostgreSQL)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._files: dict[str, int] = {}
        self._conn: Any = None
        self._engine: Any = None
        path = make_url(store.url).database if store.is_sqlite else None
        self._base = path if path and path != ":memory:" else None

    def try_lock(self, name: str) -> bool:
        if self.store.is_sqlite:
            return self._try_file(name)
        return self._try_pg(name)

    def unlock(self, name: str) -> None:
        if self.store.is_sqlite:
            fd = self._files.pop(name, None)
            if fd is not None:
                os.close(fd)  # closing the descriptor drops the flock
            return
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _pg_key(name)})
            except Exception:  # the session is gone: so is the lock
                log.debug("advisory unlock failed", exc_info=True)

    def alive(self) -> bool:
        """Whether the locks are still ours (a PostgreSQL session can die)."""
        if self.store.is_sqlite or self._conn is None:
            return True
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:
            self._drop_conn()
            return False

    def close(self) -> None:
        for name in list(self._files):
            self.unlock(name)
        self._drop_conn()
        if self._engine is not None:
            self._engine.dispose()

    # -- SQLite -------------------------------------------------------------------

    def _try_file(self, name: str) -> bool:
        if name in self._files:
            return True
        if self._base is None:
            return True  # an in-memory database is private to this process
        fd = os.open(f"{self._base}.ssh-{name}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._files[name] = fd
        return True

    # -- PostgreSQL ---------------------------------------------------------------

    def _try_pg(self, name: str) -> bool:
        try:
            if self._conn is None:  # its own connection, outside the API's pool
                if self._engine is None:
                    self._engine = create_engine(self.store.engine.url, poolclass=NullPool,
                                                 connect_args={"connect_timeout": 5})
                self._conn = self._engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT")
            return bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                           {"k": _pg_key(name)}).scalar())
        except Exception as exc:
            log.warning("SSH: could not take the serving lock: %s", exc)
            self._drop_conn()
            return False

    def _drop_conn(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                pass
            self._conn = None
