"""The SSH service's periodic scans of all instances stay off the event loop,
and its walk over them lets the API's requests in."""
from __future__ import annotations

import asyncio
import threading

from localbcc.api.context import Context
from localbcc.clock import FakeClock
from localbcc.config import Settings
from localbcc.ssh import service as ssh_service
from localbcc.ssh.service import SshService
from localbcc.store.db import Store
from localbcc.store.urls import sqlite_url

from ..server import free_port


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


def test_the_walk_over_all_instances_yields_to_the_event_loop(tmp_path, monkeypatch):
    """A pass over 10,000 instances takes ~10 ms of the loop's time: it is
    walked in chunks of WALK_CHUNK, with a turn of the loop between two."""
    store = Store(sqlite_url(tmp_path))
    store.prepare()
    clock = FakeClock()
    ctx = Context(Settings(data_dir=tmp_path, ssh_port=free_port()), store, clock)
    body = {"imageId": "m-Ubt2204a", "purchaseCount": 6, "cpuCount": 1, "memoryCapacityInGB": 2}
    ctx.instances.create("AK-scan", "0123456789abcdef0123456789abcdef", body, None)
    service = SshService(ctx)
    service.serving = service.force = True  # as if it held the serving lock
    monkeypatch.setattr(ssh_service, "WALK_CHUNK", 2)

    async def turns_during_a_pass() -> int:
        await service._reconcile()  # reads the rows, opens the six endpoints
        assert len(service.listeners) == 6
        turns = 0

        async def ticker() -> None:
            nonlocal turns
            while True:
                await asyncio.sleep(0)
                turns += 1

        task = asyncio.get_running_loop().create_task(ticker())
        await asyncio.sleep(0)  # the ticker starts
        before = turns
        try:
            await service._reconcile(service._rows)  # nothing to open or write: only the walk
            return turns - before
        finally:
            task.cancel()
            await service.stop()

    try:
        assert asyncio.run(turns_during_a_pass()) >= 2  # six rows, two at a time
    finally:
        ctx.close()


def test_endpoint_errors_are_written_a_chunk_at_a_time(tmp_path, monkeypatch):
    """Thousands of sshStatusReason changes at once (an sshd that held the port
    went away) are written ERRORS_CHUNK rows per call, with the loop free in
    between; in one call they held it for 0.6 s per 5,000."""
    store = Store(sqlite_url(tmp_path))
    store.prepare()
    ctx = Context(Settings(data_dir=tmp_path, ssh_port=free_port()), store, FakeClock())
    body = {"imageId": "m-Ubt2204a", "purchaseCount": 5, "cpuCount": 1, "memoryCapacityInGB": 2}
    ids = ctx.instances.create("AK-scan", "0123456789abcdef0123456789abcdef", body, None)
    with store.write() as tx:  # reasons left by an earlier run, all wrong now
        for iid in ids["instanceIds"]:
            tx.set_ssh_error(iid, "cannot listen: taken")
    service = SshService(ctx)
    service.serving = True
    monkeypatch.setattr(ssh_service, "ERRORS_CHUNK", 2)
    calls: list[dict] = []
    write = service._write_errors
    monkeypatch.setattr(service, "_write_errors", lambda errors: (calls.append(errors), write(errors)))

    async def one_pass() -> None:
        try:
            await service._reconcile()  # opens the five endpoints, clears the five reasons
        finally:
            await service.stop()

    try:
        asyncio.run(one_pass())
        with store.read() as tx:
            left = [r for r in tx.ssh_endpoints() if r[-1] is not None]
    finally:
        ctx.close()
    assert [len(c) for c in calls] == [2, 2, 1]
    assert left == []
