"""A read cache that is emptied whenever the database changes.

An entry is an answer computed from the database. Before every lookup the
cache asks for the database's change counter (SQLite: ``PRAGMA data_version``,
which moves when any connection of any process commits); if it moved, every
entry is dropped. So a read that starts after a write was acknowledged, in
this process or another, never sees an answer from before it. Without a
change counter (PostgreSQL) the cache is off and every read goes to the
database.

Invalidation is all-or-nothing on purpose: it needs no bookkeeping of which
write touches which answer, and a write-heavy load simply gets no hits.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Hashable


class ReadCache:
    def __init__(self, version: Callable[[], int | None] | None, max_entries: int = 4096):
        """``version`` returns the database's change counter, or None when it
        cannot tell (then that lookup bypasses the cache); None: no cache."""
        self._version = version
        self._max = max_entries
        self._entries: dict[Hashable, Any] = {}
        self._seen: int | None = None
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The cached answer for ``key``, or ``load()``'s (cached when it returns;
        an exception is not cached). Callers must not modify the answer."""
        if self._version is None:
            return load()
        version = self._version()  # before loading: a commit after this empties the cache
        if version is None:
            return load()
        with self._lock:
            if version != self._seen:
                self._entries.clear()
                self._seen = version
            else:
                found = self._entries.get(key)
                if found is not None:
                    return found
        answer = load()
        with self._lock:
            if version == self._seen:  # nothing newer was seen while loading
                if len(self._entries) >= self._max:
                    del self._entries[next(iter(self._entries))]  # the oldest entry
                self._entries[key] = answer
        return answer

    def close(self) -> None:
        self._entries.clear()
