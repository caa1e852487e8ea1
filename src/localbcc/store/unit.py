"""The unit of work: the one way a storage-bound call runs from the event loop.

``await store.unit.run(fn, *args)`` runs ``fn`` (a domain call that opens its
own transactions) and returns its result once its writes are durable:

* SQLite: inline on the event loop (no thread hop, and one process never
  interleaves its own transactions), then it waits for the group commit of
  its loop turn (store/batch.py). Errors wait too: one may rest on a
  batch-mate's write that could still fail to commit. While another process
  holds SQLite's write lock the call is tried again every few milliseconds,
  the loop serving other requests meanwhile, for up to the busy timeout
  (then 503).
* A network database: on a thread pool as large as the connection pool, so
  no call ever waits for a connection it cannot get.

Compiled with mypyc (localbcc/compiled.py): it is on every request's path.
"""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

from ..errors import BceError, ErrorCode
from .sqlite import BUSY_TIMEOUT_MS, WriteLockBusy

if TYPE_CHECKING:
    from .db import Store


class UnitOfWork:
    def __init__(self, store: Store, threads: int) -> None:
        self.store = store
        #: Calls of run() under way on the event loop (0 or 1: they run inline),
        #: for the store's check that nothing writes on the loop outside them.
        self.depth = 0
        self._pool: ThreadPoolExecutor | None = None if store.is_sqlite else ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="localbcc-db")

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)``, answered once its writes are durable."""
        if self._pool is None:
            pause, waited = 0.001, 0.0
            while True:
                busy, failure, result = False, None, None
                self.depth += 1  # not in a finally: only BaseExceptions pass, and end the process
                try:
                    result = fn(*args, **kwargs)
                except WriteLockBusy:  # another process is writing: nothing was done yet
                    busy = True
                except Exception as exc:  # noqa: BLE001 - answered once the batch is committed
                    failure = exc
                self.depth -= 1
                # Errors wait too. Not awaited inside a handler: compiled code
                # must not (docs/design.md).
                await self.store.durable()
                if failure is not None:
                    raise failure
                if not busy:
                    return result
                if waited >= BUSY_TIMEOUT_MS / 1000:
                    raise BceError(ErrorCode.ServiceUnavailable)
                await asyncio.sleep(pause)  # 1, 2, 4 ... 20 ms
                waited += pause
                pause = min(pause * 2, 0.02)
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
