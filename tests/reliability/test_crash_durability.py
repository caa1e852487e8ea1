"""Group 1: crash durability. SDK clients create, import, delete, attach and
detach concurrently; the server is SIGKILLed at a random moment and restarted.
Every call that was answered 200 must be reflected, the call in flight at the
kill may or may not have happened but never half (a batch attach is all or
nothing), and the invariants hold, through the API and in SQL.

Each worker thread owns its own instances and key pairs, so the last
acknowledged state of each is known exactly. Four kill points, alternating
``--durability normal`` and ``full`` (SQLite). Budget: about 20 s per backend.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.exception import BceHttpClientError, BceServerError
from baidubce.retry.retry_policy import NoRetryPolicy
from baidubce.services.bcc.bcc_client import BccClient
from sqlalchemy import create_engine, text

from .helpers import database_url, openssh_ed25519, wait_until

WORKERS = 6
INSTANCES_PER_WORKER = 3
KILL_POINTS = 4


def _client(srv) -> BccClient:
    """An SDK client that does not retry: a call either got its answer or did not."""
    ak = next(iter(srv.credentials))
    return BccClient(BceClientConfiguration(
        credentials=BceCredentials(ak, srv.credentials[ak]), endpoint=srv.endpoint,
        retry_policy=NoRetryPolicy(), connection_timeout_in_mills=5000))


@dataclass
class Worker:
    """One client thread and the state it was told about (acknowledged)."""

    name: str
    instances: list[str]
    pairs: dict[str, str] = field(default_factory=dict)  # id -> public key (acknowledged)
    bound: dict[str, str | None] = field(default_factory=dict)  # instance -> pair id
    pending: tuple | None = None  # the call in flight when the answers stopped
    failure: BaseException | None = None
    acked: int = 0
    seq: int = 0

    def __post_init__(self):
        self.bound = {i: None for i in self.instances}

    def choose(self, rng: random.Random) -> tuple:
        free = [p for p in self.pairs if p not in self.bound.values()]
        roll = rng.random()
        if len(self.pairs) < 2 or roll < 0.2:
            self.seq += 1
            return ("import", f"{self.name}p{self.seq}", openssh_ed25519())
        if roll < 0.27:
            self.seq += 1
            return ("create", f"{self.name}c{self.seq}")
        if roll < 0.35 and free and len(self.pairs) > 2:
            return ("delete", rng.choice(free))
        pair = rng.choice(list(self.pairs))
        if roll < 0.75:
            candidates = [i for i in self.instances if self.bound[i] != pair]
            if candidates:
                batch = rng.sample(candidates, rng.randint(1, len(candidates)))
                return ("attach", pair, batch)
        batch = rng.sample(self.instances, rng.randint(1, len(self.instances)))
        return ("detach", pair, batch)

    def call(self, client: BccClient, op: tuple):
        kind = op[0]
        if kind == "import":
            return client.import_keypair(keypair_name=op[1], public_key=op[2]).keypair
        if kind == "create":
            return client.create_keypair(keypair_name=op[1]).keypair
        if kind == "delete":
            return client.delete_keypair(op[1])
        if kind == "attach":
            return client.attach_keypair(op[1], op[2])
        return client.detach_keypair(op[1], op[2])

    def apply(self, op: tuple, answer) -> None:
        kind = op[0]
        if kind in ("import", "create"):
            self.pairs[answer.keypair_id] = answer.public_key
        elif kind == "delete":
            del self.pairs[op[1]]
        elif kind == "attach":
            for iid in op[2]:
                self.bound[iid] = op[1]
        else:
            for iid in op[2]:
                if self.bound[iid] == op[1]:
                    self.bound[iid] = None

    def run(self, client: BccClient, rng: random.Random, stop: threading.Event) -> None:
        while not stop.is_set():
            op = self.choose(rng)
            self.pending = op
            try:
                answer = self.call(client, op)
            except BceHttpClientError as exc:
                if isinstance(exc.last_error, BceServerError):  # an answer, and a refusal
                    self.failure = exc.last_error
                return  # no answer: the server is gone; `pending` may or may not have applied
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.failure = exc
                return
            self.apply(op, answer)
            self.pending = None
            self.acked += 1


def _reconcile(workers: list[Worker], srv) -> None:
    """Check the restarted server against what was acknowledged, then adopt its state."""
    client = srv.client()
    pairs = {}
    marker = None
    while True:
        page = client.list_keypairs(marker=marker, max_keys=1000)
        pairs.update({k.keypair_id: k for k in page.keypairs})
        if not page.is_truncated:
            break
        marker = page.next_marker
    instances = {i.id: i for i in client.list_instances().instances}
    claimed = set()
    for w in workers:
        kind = w.pending[0] if w.pending else None
        # every acknowledged pair is there, unchanged (unless its delete was in flight)
        for pid, public in w.pairs.items():
            if pid not in pairs:
                assert w.pending == ("delete", pid), (w.name, pid, w.pending)
                continue
            assert pairs[pid].public_key == public, (w.name, pid)
            claimed.add(pid)
        if kind == "delete" and w.pending[1] in pairs:
            pass  # the delete did not happen: fine, it was never acknowledged
        # a pair nobody was told about may only be the one import/create in flight
        mine = {pid for pid, kp in pairs.items() if kp.name.startswith(w.name)} - set(w.pairs)
        if mine:
            assert kind in ("import", "create") and len(mine) == 1, (w.name, mine, w.pending)
            (pid,) = mine
            assert pairs[pid].name == w.pending[1], (pairs[pid].name, w.pending)
            if kind == "import":
                assert pairs[pid].public_key.split()[1] == w.pending[2].split()[1]
            claimed.add(pid)
        # bindings: as acknowledged, or the whole in-flight batch applied
        actual = {iid: instances[iid].keypair_id or None for iid in w.instances}
        if kind in ("attach", "detach"):
            pair, batch = w.pending[1], w.pending[2]
            after = dict(w.bound)
            for iid in batch:
                if kind == "attach":
                    after[iid] = pair
                elif after[iid] == pair:
                    after[iid] = None
            assert actual in (w.bound, after), (w.name, kind, batch, w.bound, after, actual)
        else:
            assert actual == w.bound, (w.name, w.bound, actual)
        # adopt the server's state for the next round
        w.pairs = {pid: pairs[pid].public_key for pid in claimed if pairs[pid].name.startswith(w.name)}
        w.bound = actual
        w.pending = None
    assert claimed == set(pairs), set(pairs) - claimed  # nothing else appeared
    _check_invariants(srv, pairs, instances)


def _check_invariants(srv, pairs: dict, instances: dict) -> None:
    """Counts equal bindings, through the API and in SQL; no binding to a missing pair."""
    api_counts = {pid: kp.instance_count for pid, kp in pairs.items()}
    bindings: dict[str, int] = {}
    for inst in instances.values():
        if inst.keypair_id:
            assert inst.keypair_id in pairs, inst.keypair_id
            bindings[inst.keypair_id] = bindings.get(inst.keypair_id, 0) + 1
    assert api_counts == {pid: bindings.get(pid, 0) for pid in pairs}
    engine = create_engine(database_url(srv))
    try:
        with engine.connect() as conn:
            sql_pairs = {r[0] for r in conn.execute(text("SELECT id FROM keypairs"))}
            assert sql_pairs == set(pairs)
            sql_bindings = dict(conn.execute(text(
                "SELECT keypair_id, count(*) FROM instances WHERE keypair_id IS NOT NULL "
                "GROUP BY keypair_id")).all())
            assert sql_bindings == bindings
            orphans = conn.execute(text(
                "SELECT count(*) FROM instances WHERE keypair_id IS NOT NULL AND keypair_id "
                "NOT IN (SELECT id FROM keypairs)")).scalar()
            assert orphans == 0
            if engine.dialect.name == "sqlite":
                assert conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    finally:
        engine.dispose()


def test_sigkill_loses_no_acknowledged_call(fresh_server):
    srv = fresh_server("--transition-seconds", "0")
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    print(f"crash test seed {seed}")
    ids = srv.client().create_instance(1, 1, "m-Ubt2204a",
                                       purchase_count=WORKERS * INSTANCES_PER_WORKER).instance_ids
    workers = [Worker(f"w{n}x", ids[n * INSTANCES_PER_WORKER:(n + 1) * INSTANCES_PER_WORKER])
               for n in range(WORKERS)]
    total_acked = 0
    for point in range(KILL_POINTS):
        stop = threading.Event()
        threads = [threading.Thread(target=w.run, args=(_client(srv), random.Random(rng.random()), stop))
                   for w in workers]
        before = sum(w.acked for w in workers)
        for t in threads:
            t.start()
        # let real work happen, then kill at a random moment
        wait_until(lambda: sum(w.acked for w in workers) >= before + 30, 20, "calls to be answered")
        time.sleep(rng.uniform(0, 1.0))  # the random kill point, not synchronisation
        srv.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive()
        for w in workers:
            assert w.failure is None, (w.name, w.failure)
        total_acked = sum(w.acked for w in workers)
        # alternate the durability mode across restarts (SQLite; PostgreSQL ignores it)
        srv.extra_args = [a for a in srv.extra_args if a not in ("--durability", "normal", "full")]
        srv.extra_args += ["--durability", "full" if point % 2 == 0 else "normal"]
        srv.start()
        _reconcile(workers, srv)
    assert total_acked >= 30 * KILL_POINTS
