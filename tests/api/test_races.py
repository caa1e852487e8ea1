"""Concurrent attach / detach / release / delete-keypair (issue 3, "Concurrency").

8 threads, each with its own SDK client, make 100 random calls each over 20
instances and 3 key pairs. The threads are split over two server processes on
one database, so only the storage layer (transactions, constraints) can keep
the bindings consistent: a process-local lock would not see the other process.
Afterwards the invariants are checked through the API and in the database.
"""
from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter

import pytest
from baidubce.exception import BceHttpClientError

from ..server import Server
from .helpers import (
    all_instances,
    create_instances,
    database_for,
    expect_error,
    instances_of_keypair,
    new_credentials,
    new_keypair,
)

THREADS, CALLS, INSTANCES, PAIRS = 8, 100, 20, 3

#: 4xx answers a caller racing others must expect; anything else is a failure.
EXPECTED = {
    "attach": {"Keypair.KeypairNotExist", "Keypair.InstanceNotExist",
               "Keypair.AttachAttachedKeypair"},
    "detach": {"Keypair.KeypairNotExist", "Keypair.InstanceNotExist"},
    "release": {"NoSuchObject"},
    "delete": {"Keypair.KeypairNotExist", "Keypair.DeleteKeypairInUse"},
}


@pytest.fixture
def two_processes(tmp_path, request, backend):
    url, cleanup = database_for(request, backend, "races")
    creds = new_credentials(1)
    first = Server(tmp_path / "data", creds, extra_args=["--transition-seconds", "0"],
                   database_url=url).start()
    second = Server(tmp_path / "data", creds, extra_args=["--transition-seconds", "0"],
                    database_url=url)
    second.log_path = tmp_path / "data" / "server-2.log"
    try:
        second.start()
        yield first, second
    finally:
        second.stop()
        first.stop()
        cleanup()


def _db_rows(server: Server, sql: str) -> list[tuple]:
    if server.database_url is None:
        with sqlite3.connect(server.data_dir / "localbcc.db") as conn:
            return [tuple(r) for r in conn.execute(sql)]
    import psycopg

    with psycopg.connect(server.database_url) as conn:
        return [tuple(r) for r in conn.execute(sql)]


def test_concurrent_attach_detach_release_delete_keep_the_invariants(two_processes):
    first, second = two_processes
    setup = first.client()
    ids = create_instances(setup, INSTANCES)
    pairs = [new_keypair(setup, f"race-{n}") for n in range(PAIRS)]
    names = {kp: f"race-{n}" for n, kp in enumerate(pairs)}
    setup.attach_keypair(pairs[0], ids[:5])  # start with some bindings to fight over

    outcomes: Counter = Counter()
    unexpected: list[str] = []
    released: set[str] = set()
    deleted: set[str] = set()
    lock = threading.Lock()
    barrier = threading.Barrier(THREADS)

    def worker(n: int) -> None:
        client = (first, second)[n % 2].client()
        rnd = random.Random(1000 + n)
        try:
            barrier.wait()
            calls(client, rnd, n)
        except BaseException as err:  # noqa: BLE001 - a dead worker must fail the test
            with lock:
                unexpected.append(f"worker {n} died: {type(err).__name__} {err}"[:500])

    def calls(client, rnd, n):
        for _ in range(CALLS):
            roll = rnd.random()
            with lock:  # mostly live ones; those another thread is removing race on
                kp = rnd.choice([p for p in pairs if p not in deleted] or pairs)
                live = [i for i in ids if i not in released] or ids
                some = rnd.sample(live, min(len(live), rnd.randint(1, 4)))
            op = ("attach" if roll < 0.50 else "detach" if roll < 0.84 else
                  "release" if roll < 0.90 else "delete")
            try:
                if op == "attach":
                    client.attach_keypair(kp, some)
                elif op == "detach":
                    client.detach_keypair(kp, instance_ids=some)
                elif op == "release":
                    client.release_instance(some[0])
                    with lock:
                        released.add(some[0])
                    [new] = create_instances(client, 1, wait=None)
                    with lock:  # replaced, so the race goes on over 20 instances
                        ids.append(new)
                else:
                    client.delete_keypair(kp)
                    with lock:
                        deleted.add(kp)
                    name = f"race-{n}-{len(pairs)}"
                    fresh = new_keypair(client, name)
                    with lock:
                        pairs.append(fresh)
                        names[fresh] = name
                with lock:
                    outcomes[op, "ok"] += 1
            except BceHttpClientError as err:
                with lock:
                    outcomes[op, err.code] += 1
                    if err.code not in EXPECTED[op]:
                        unexpected.append(f"{op}: {err.status_code} {err.code} {err}"[:500])
            except Exception as err:  # noqa: BLE001 - report everything
                with lock:
                    unexpected.append(f"{op}: {type(err).__name__} {err}"[:500])

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert not unexpected, unexpected[:5]
    assert sum(outcomes.values()) == THREADS * CALLS
    # the race really happened: bindings changed hands many times, and some
    # instances and pairs went away while others were using them
    assert outcomes["attach", "ok"] >= 100 and outcomes["detach", "ok"] >= 50, outcomes
    assert outcomes["release", "ok"] == len(released) >= 5, outcomes
    assert outcomes["delete", "ok"] == len(deleted), outcomes

    # -- through the API ----------------------------------------------------------------
    client = second.client()
    live_pairs = {kp.keypair_id: kp for kp in client.list_keypairs().keypairs}
    assert set(live_pairs) == set(pairs) - deleted
    instances = all_instances(client)
    assert {i.id for i in instances} == set(ids) - released
    assert len(instances) == INSTANCES
    bound: dict[str, list[str]] = {kp: [] for kp in pairs}
    for inst in instances:
        if inst.keypair_id:
            assert inst.keypair_id in live_pairs, f"{inst.id} bound to deleted {inst.keypair_id}"
            assert inst.keypair_name == names[inst.keypair_id]
            bound[inst.keypair_id].append(inst.id)
    for kp in pairs:
        if kp in live_pairs:
            assert live_pairs[kp].instance_count == len(bound[kp]), kp
            assert client.get_keypair(kp).keypair.instance_count == len(bound[kp])
            assert instances_of_keypair(second, kp) == bound[kp]
            assert instances_of_keypair(first, kp, max_keys=3) == bound[kp]
        else:
            expect_error(404, "Keypair.KeypairNotExist", client.get_keypair, kp)
            assert bound[kp] == [] and instances_of_keypair(first, kp) == []
    for iid in released:
        expect_error(404, "NoSuchObject", client.get_instance, iid)

    # -- in the database itself ------------------------------------------------------------
    rows = dict(_db_rows(first, "SELECT id, keypair_id FROM instances"))
    assert rows == {i.id: i.keypair_id or None for i in instances}
    assert _db_rows(first, "SELECT count(*) FROM instances i WHERE i.keypair_id IS NOT NULL "
                           "AND NOT EXISTS (SELECT 1 FROM keypairs k WHERE k.id = i.keypair_id)"
                    ) == [(0,)]
    counted = dict(_db_rows(first, "SELECT k.id, (SELECT count(*) FROM instances i "
                                   "WHERE i.keypair_id = k.id) FROM keypairs k"))
    assert counted == {kp: len(bound[kp]) for kp in live_pairs}
    if first.database_url is None:
        assert _db_rows(first, "PRAGMA foreign_key_check") == []
        assert _db_rows(first, "PRAGMA integrity_check") == [("ok",)]
