"""Everything a handler may use, built once per server process."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..auth import Verifier
from ..clock import Clock
from ..config import Settings
from ..domain.instances import InstanceService
from ..domain.keypairs import KeypairService
from ..store.accounts import Accounts
from ..store.db import Store
from ..store.unit import UnitOfWork
from ..ssh.view import SshView


class Context:
    def __init__(self, settings: Settings, store: Store, clock: Clock | None = None):
        self.settings = settings
        self.store = store
        #: Every storage-bound call from the event loop: ``await ctx.unit.run(fn, *args)``.
        self.unit: UnitOfWork = store.unit
        self.clock = clock or Clock()
        self.accounts = Accounts(store, self.clock)
        self.verifier = Verifier(self.accounts, self.clock)
        self.keypairs = KeypairService(store, self.clock, settings.region, settings.keypair_quota)
        self.instances = InstanceService(store, self.clock, settings.region,
                                         settings.transition_seconds, settings.instance_quota,
                                         ssh=SshView.from_settings(settings))
        self.ssh_service: Any = None  # this process's SSH service, once ssh.start_service ran
        self._cpu = ThreadPoolExecutor(max_workers=2, thread_name_prefix="localbcc-cpu")

    async def open_endpoints(self, instance_ids: list[str]) -> None:
        """SSH endpoints of new or rebuilt instances, opened before the answer
        (if this process serves them): an instance that reads Running takes
        logins at once."""
        if self.ssh_service is not None:
            await self.ssh_service.open_now(instance_ids)

    async def read_in_background(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A read no answer waits for (the SSH service's periodic scans). On
        SQLite it runs on a worker thread with a connection of its own: a scan
        of many instances, inline, would stall every request meanwhile (sqlite3
        lets go of the GIL while SQLite works; docs/performance.md). A network
        database: ``unit.run``, whose thread pool it is."""
        if self.store.is_sqlite:
            return await self.offload(fn, *args)
        return await self.unit.run(fn, *args)

    async def offload(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run CPU-heavy work off the event loop, on a small pool of its own: key
        generation, password checks (scrypt), and SQLite's background reads
        (:meth:`read_in_background`)."""
        return await asyncio.get_running_loop().run_in_executor(self._cpu, fn, *args)

    def close(self) -> None:
        self._cpu.shutdown(wait=False)
        self.store.dispose()  # and its unit of work's threads
