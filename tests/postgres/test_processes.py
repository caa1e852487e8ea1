"""Several server processes on one database: `serve --workers 4`, a second
`serve` on another port, racing SDK clients (the invariants are checked in SQL
afterwards), statuses that agree between processes, one clientToken raced
from everywhere. Each test runs on both backends: PostgreSQL (row locks) and
SQLite (one file shared by processes, BEGIN IMMEDIATE)."""
from __future__ import annotations

import random
import re
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.exception import BceHttpClientError
from baidubce.retry.retry_policy import NoRetryPolicy
from baidubce.services.bcc.bcc_client import BccClient
from sqlalchemy import create_engine, text

from ..server import Server
from ..store.data import LINUX, public_key


def strict_client(srv: Server, ak: str | None = None) -> BccClient:
    """An SDK client that never retries, so every 5xx is seen."""
    ak = ak or next(iter(srv.credentials))
    return BccClient(BceClientConfiguration(credentials=BceCredentials(ak, srv.credentials[ak]),
                                            endpoint=srv.endpoint, retry_policy=NoRetryPolicy()))


def query(srv: Server, sql: str, **params) -> list[tuple]:
    engine = create_engine(srv.database())
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


def shared_url(request, backend: str, tmp_path: Path) -> str:
    """One database for several servers."""
    if backend == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        name, url = cluster.create_database("multi")
        request.addfinalizer(lambda: cluster.drop_database(name))
        return url
    return f"sqlite:///{tmp_path / 'shared.db'}"


def start_servers(tmp_path: Path, url: str, creds: dict, *arg_lists) -> list[Server]:
    servers = []
    for n, args in enumerate(arg_lists):
        servers.append(Server(tmp_path / f"s{n}", creds, extra_args=list(args),
                              database_url=url).start(timeout=60))
    return servers


def worker_pids(srv: Server) -> set[int]:
    """Processes uvicorn says it started (one per worker)."""
    return {int(p) for p in re.findall(r"Started server process \[(\d+)\]",
                                       srv.log_path.read_text())}


def test_four_workers_and_a_second_server_share_one_database(request, backend, tmp_path):
    url = shared_url(request, backend, tmp_path)
    creds = {"AK" + secrets.token_hex(6): secrets.token_hex(16)}
    multi, single = start_servers(tmp_path, url, creds,
                                  ["--workers", "4", "--transition-seconds", "0"],
                                  ["--transition-seconds", "0"])
    try:
        deadline = time.monotonic() + 30
        while len(worker_pids(multi)) < 4:  # uvicorn starts the workers one by one
            assert time.monotonic() < deadline, multi.log_path.read_text()[-2000:]
            time.sleep(0.05)
        assert len(worker_pids(multi)) == 4

        def work(n: int) -> str:
            c = strict_client(multi)
            kp = c.import_keypair(keypair_name=f"w{n}", public_key=public_key()).keypair.keypair_id
            assert strict_client(single).get_keypair(kp).keypair.name == f"w{n}"
            return kp

        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(work, range(32)))
        listed = {k.keypair_id for k in strict_client(single).list_keypairs(max_keys=1000).keypairs}
        assert listed == set(made)
        assert all(Path(f"/proc/{pid}").exists() for pid in worker_pids(multi))  # all alive
    finally:
        single.stop()
        multi.stop()


# -- the race -------------------------------------------------------------------------------

TOLERATED = {  # what a racing client may legitimately be told
    "Keypair.KeypairNotExist", "Keypair.InstanceNotExist", "Keypair.AttachAttachedKeypair",
    "Keypair.DeleteKeypairInUse", "NoSuchObject", "Instance.StartInstanceOperationForbidden",
    "Instance.StopInstanceOperationForbidden", "Instance.InstanceStatusForbidden",
    "Keypair.InstanceStatusForbidden", "Instance.StartInstanceWhenCreating",
}


def test_racing_clients_on_two_servers_keep_every_invariant(request, backend, tmp_path):
    url = shared_url(request, backend, tmp_path)
    creds = {"AK" + secrets.token_hex(6): secrets.token_hex(16)}
    servers = start_servers(tmp_path, url, creds,
                            ["--workers", "2", "--transition-seconds", "0"],
                            ["--transition-seconds", "0"])
    try:
        _race(servers)
    finally:
        for s in servers:
            s.stop()
    if backend == "postgresql":  # the lock order leaves no room for a deadlock
        pg_log = request.getfixturevalue("pg_cluster").log_text()
        assert "deadlock detected" not in pg_log, pg_log[max(0, pg_log.find("deadlock detected") - 2000):][:6000]


def _race(servers: list[Server]) -> None:
    setup = strict_client(servers[0])
    instances = setup.create_instance(cpu_count=1, memory_capacity_in_gb=1, image_id=LINUX,
                                      purchase_count=60).instance_ids
    pairs = [setup.import_keypair(keypair_name=f"p{n}", public_key=public_key()).keypair.keypair_id
             for n in range(10)]
    lock = threading.Lock()
    log: dict[str, list] = {"created_pairs": [], "deleted_pairs": [], "released": [],
                            "probes": [], "errors": []}
    live_pairs = list(pairs)

    def call(fn, *args, **kw):
        try:
            return True, fn(*args, **kw)
        except BceHttpClientError as exc:
            code = exc.code.decode() if isinstance(exc.code, bytes) else exc.code
            if code not in TOLERATED:
                with lock:
                    log["errors"].append((fn.__name__, exc.status_code, code))
            return False, code

    def racer(seed: int) -> None:
        rnd = random.Random(seed)
        clients = [strict_client(s) for s in servers]
        for _ in range(30):
            c = rnd.choice(clients)
            with lock:
                kp = rnd.choice(live_pairs)
            batch = rnd.sample(instances, rnd.randint(1, 6))
            roll = rnd.random()
            if roll < 0.30:
                call(c.attach_keypair, kp, batch)
            elif roll < 0.50:
                call(c.detach_keypair, kp, batch)
            elif roll < 0.58:
                ok, _ = call(c.release_instance, batch[0])
                if ok:
                    with lock:
                        log["released"].append(batch[0])
            elif roll < 0.68:
                ok, _ = call(c.delete_keypair, kp)
                if ok:
                    with lock:
                        log["deleted_pairs"].append(kp)
                        if kp in live_pairs and len(live_pairs) > 1:
                            live_pairs.remove(kp)
            elif roll < 0.76:
                ok, got = call(c.import_keypair, keypair_name="new", public_key=public_key())
                if ok:
                    with lock:
                        log["created_pairs"].append(got.keypair.keypair_id)
                        live_pairs.append(got.keypair.keypair_id)
            elif roll < 0.86:
                # a probe: a pair nobody else knows, attached to a batch that may
                # contain a released instance; all or nothing
                ok, got = call(c.import_keypair, keypair_name="probe", public_key=public_key())
                if ok:
                    probe = got.keypair.keypair_id
                    attached, code = call(c.attach_keypair, probe, batch)
                    with lock:
                        log["created_pairs"].append(probe)
                        log["probes"].append((probe, batch, attached, code))
            else:
                call(rnd.choice([c.stop_instance, c.start_instance]), batch[0])

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(racer, range(16)))

    assert log["errors"] == []  # no 5xx, no unexpected code
    deleted = set(log["deleted_pairs"])
    assert len(deleted) == len(log["deleted_pairs"])  # each deleted once
    srv = servers[0]
    # exact counts
    n_pairs = query(srv, "SELECT count(*) FROM keypairs")[0][0]
    assert n_pairs == len(pairs) + len(log["created_pairs"]) - len(deleted)
    n_inst = query(srv, "SELECT count(*) FROM instances")[0][0]
    assert n_inst == len(instances) - len(log["released"])
    # no binding to a deleted or foreign pair
    dangling = query(srv, "SELECT i.id FROM instances i LEFT JOIN keypairs k ON k.id = i.keypair_id "
                          "WHERE i.keypair_id IS NOT NULL AND (k.id IS NULL OR k.account <> i.account)")
    assert dangling == []
    bound_to_deleted = query(srv, "SELECT count(*) FROM instances WHERE keypair_id IN "
                                  "(SELECT id FROM tombstones WHERE kind = 'keypair')")[0][0]
    assert bound_to_deleted == 0
    # every deletion left exactly one tombstone
    tomb = dict(query(srv, "SELECT kind, count(*) FROM tombstones GROUP BY kind"))
    assert tomb.get("keypair", 0) == len(deleted)
    assert tomb.get("instance", 0) == len(log["released"])
    # atomic batch attach: a probe that failed bound nothing
    counts = dict(query(srv, "SELECT keypair_id, count(*) FROM instances "
                             "WHERE keypair_id IS NOT NULL GROUP BY keypair_id"))
    failed = [p for p in log["probes"] if not p[2]]
    for probe, batch, _, code in failed:
        assert counts.get(probe, 0) == 0, (probe, code)
    for probe, batch, ok, _ in log["probes"]:
        if ok:  # others may have moved some since, never added any
            bound = {r[0] for r in query(srv, "SELECT id FROM instances WHERE keypair_id = :k", k=probe)}
            assert bound <= set(batch)
    # instanceCount agrees with SQL, through every server
    for s in servers:
        c = strict_client(s)
        for k in c.list_keypairs(max_keys=1000).keypairs:
            assert k.instance_count == counts.get(k.keypair_id, 0)
    # one pair per instance, and each instance shows the pair SQL has
    rows = dict(query(srv, "SELECT id, keypair_id FROM instances"))
    for inst in strict_client(servers[1]).list_instances(max_keys=1000).instances:
        assert (inst.keypair_id or None) == rows[inst.id]


def test_one_client_token_raced_from_two_servers_creates_once(request, backend, tmp_path):
    url = shared_url(request, backend, tmp_path)
    creds = {"AK" + secrets.token_hex(6): secrets.token_hex(16)}
    servers = start_servers(tmp_path, url, creds, ["--workers", "2"], [])
    token = "race-" + secrets.token_hex(4)
    try:
        def create(n: int):
            c = strict_client(servers[n % 2])
            return tuple(c.create_instance(cpu_count=1, memory_capacity_in_gb=1, image_id=LINUX,
                                           purchase_count=3, client_token=token).instance_ids)

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(create, range(24)))
        assert len(set(answers)) == 1 and len(answers[0]) == 3
        assert query(servers[0], "SELECT count(*) FROM instances")[0][0] == 3
    finally:
        for s in servers:
            s.stop()


def test_statuses_derived_from_stored_times_agree_between_processes(request, backend, tmp_path):
    """A transition started by one server (1.5 s long) shows on another that is
    configured with a different transition time, and ends there at the same time."""
    url = shared_url(request, backend, tmp_path)
    creds = {"AK" + secrets.token_hex(6): secrets.token_hex(16)}
    slow, quick = start_servers(tmp_path, url, creds, ["--transition-seconds", "1.5"],
                                ["--transition-seconds", "0.1"])
    try:
        a, b = strict_client(slow), strict_client(quick)

        def both(iid: str) -> tuple[str, str]:
            return a.get_instance(iid).instance.status, b.get_instance(iid).instance.status

        def settle(iid: str, want: str) -> None:
            deadline = time.monotonic() + 10
            while True:
                first = a.get_instance(iid).instance.status
                then = b.get_instance(iid).instance.status  # read later: it may only be further
                if first == want:
                    assert then == want
                    return
                assert then in (first, want)
                assert time.monotonic() < deadline
                time.sleep(0.05)

        iid = a.create_instance(cpu_count=1, memory_capacity_in_gb=1, image_id=LINUX).instance_ids[0]
        assert both(iid) == ("Starting", "Starting")
        assert [i.id for i in b.list_instances(status="Starting").instances] == [iid]
        settle(iid, "Running")
        a.stop_instance(iid)
        assert both(iid) == ("Stopping", "Stopping")
        settle(iid, "Stopped")
        b.start_instance(iid)  # the quick server's 0.1 s transition, seen by the slow one
        settle(iid, "Running")
        assert [i.id for i in a.list_instances(status="Running").instances] == [iid]
    finally:
        quick.stop()
        slow.stop()
