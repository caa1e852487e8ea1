"""Everything a handler may use, built once per server process."""
from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..auth import Verifier
from ..clock import Clock
from ..config import Settings
from ..domain.instances import InstanceService
from ..domain.keypairs import KeypairService
from ..store.accounts import Accounts, SecretNotCached
from ..errors import BceError, ErrorCode
from ..store.db import BUSY_TIMEOUT_MS, Store, WriteLockBusy
from ..ssh.view import SshView


class Context:
    def __init__(self, settings: Settings, store: Store, clock: Clock | None = None):
        self.settings = settings
        self.store = store
        self.clock = clock or Clock()
        self.accounts = Accounts(store, self.clock)
        self.verifier = Verifier(self.accounts.secret_of, self.clock)
        self.keypairs = KeypairService(store, self.clock, settings.region, settings.keypair_quota)
        self.instances = InstanceService(store, self.clock, settings.region,
                                         settings.transition_seconds, settings.instance_quota)
        self.instances.ssh = SshView.from_settings(settings)  # SSH fields of instances
        self.ssh_service: Any = None  # this process's SSH service, once ssh.start_service ran
        self._cpu = ThreadPoolExecutor(max_workers=2, thread_name_prefix="localbcc-cpu")
        self._db = None if store.is_sqlite else ThreadPoolExecutor(
            max_workers=settings.db_pool_size + settings.db_max_overflow,
            thread_name_prefix="localbcc-db")

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a storage-bound domain call. SQLite answers in microseconds, so it
        runs inline (no thread hop, and one process never interleaves its own
        transactions), then waits for the group commit of its loop turn
        (store/db.py), so an answer is never sent before its writes are
        durable. While another process holds SQLite's write lock the call is
        tried again every few milliseconds, the loop serving other requests
        meanwhile, for up to the busy timeout (then 503). A network database
        runs on a bounded thread pool."""
        if self._db is None:
            pause, waited = 0.001, 0.0
            while True:
                busy, failure, result = False, None, None
                try:
                    result = fn(*args, **kwargs)
                except WriteLockBusy:  # another process is writing: nothing was done yet
                    busy = True
                except Exception as exc:  # noqa: BLE001 - answered once the batch is committed
                    failure = exc
                # Errors wait too: one may rest on a batch-mate's write that could still
                # fail. Not awaited inside a handler: compiled code must not (docs/design.md).
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
            self._db, functools.partial(fn, *args, **kwargs))

    async def secret_key(self, access_key: str) -> str | None:
        """An account's secret key: from memory, else read from the database
        (a network database: off the event loop, store/accounts.py)."""
        try:
            return self.accounts.secret_of(access_key)
        except SecretNotCached:
            pass
        return await self.run(self.accounts.load, access_key)

    async def open_endpoints(self, instance_ids: list[str]) -> None:
        """SSH endpoints of new or rebuilt instances, opened before the answer
        (if this process serves them): an instance that reads Running takes
        logins at once."""
        if self.ssh_service is not None:
            await self.ssh_service.open_now(instance_ids)

    async def read_in_background(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A read no answer waits for (the SSH service's periodic scans). On
        SQLite it runs on a worker thread with a connection of its own: a scan
        of 10,000 instances takes tens of milliseconds, and inline it would
        stall every request meanwhile (sqlite3 lets go of the GIL while SQLite
        works). A network database: like run()."""
        if self._db is None:
            return await self.offload(fn, *args)
        return await self.run(fn, *args)

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run CPU-heavy work off the event loop, on a small pool of its own: key
        generation, password checks (scrypt), and SQLite's background reads
        (:meth:`read_in_background`)."""
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn, *args)

    def close(self) -> None:
        self._cpu.shutdown(wait=False)
        if self._db is not None:
            self._db.shutdown(wait=False)
        self.store.dispose()
