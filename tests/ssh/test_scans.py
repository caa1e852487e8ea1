"""The SSH service's periodic scans of all instances stay off the event loop."""
from __future__ import annotations

import asyncio
import threading

from localbcc.api.context import Context
from localbcc.clock import FakeClock
from localbcc.config import Settings
from localbcc.ssh.service import SshService
from localbcc.store.db import Store, sqlite_url


def test_the_periodic_scans_run_off_the_event_loop(tmp_path):
    """With 10,000 instances a full read takes tens of milliseconds: on the
    loop's thread every API request would wait behind it (docs/performance.md)."""
    store = Store(sqlite_url(tmp_path))
    store.prepare()
    ctx = Context(Settings(data_dir=tmp_path), store, FakeClock())
    service = SshService(ctx)
    service.serving = service.force = True  # as if it held the serving lock
    threads: dict[str, int] = {}

    def recorded(name: str):
        read = getattr(service, name)

        def wrapper():
            threads[name] = threading.get_ident()
            return read()
        setattr(service, name, wrapper)

    recorded("_read_signature")
    recorded("_read_rows")

    async def one_tick() -> int:
        await service._tick()  # a first tick sees a new signature: both reads
        return threading.get_ident()

    try:
        loop_thread = asyncio.run(one_tick())
    finally:
        ctx.close()  # its worker threads, and the store
    assert set(threads) == {"_read_signature", "_read_rows"}
    assert loop_thread not in threads.values()
