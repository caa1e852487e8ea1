"""PostgreSQL going away under load: 503 ServiceUnavailable while it is gone, the
service recovers by itself when it is back, no acknowledged write is lost.
And the connection pool stays within --db-pool-size + --db-max-overflow."""
from __future__ import annotations

import secrets
import threading
import time

import pytest
from baidubce.exception import BceHttpClientError

from ..server import Server
from ..store.data import LINUX, public_key
from .cluster import PgCluster
from .test_processes import query, strict_client

pytestmark = pytest.mark.backends("postgresql")


@pytest.fixture
def own_cluster(backend):
    """A PostgreSQL server of this test's own, to stop and start at will."""
    cluster = PgCluster("localbcc-outage")
    yield cluster
    cluster.destroy()


class Load:
    """Threads writing through the SDK (never retrying), recording what was acknowledged."""

    def __init__(self, srv: Server, threads: int = 4):
        self.srv = srv
        self.acked_pairs: list[str] = []
        self.acked_instances: list[str] = []
        self.errors: list[tuple[int | None, str | None]] = []
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(threads)]

    def _run(self, n: int) -> None:
        c = strict_client(self.srv)
        for i in range(100_000):
            if self.stop.is_set():
                return
            try:
                if i % 3 == 2:
                    ids = c.create_instance(cpu_count=1, memory_capacity_in_gb=1,
                                            image_id=LINUX).instance_ids
                    with self.lock:
                        self.acked_instances.extend(ids)
                else:
                    kp = c.import_keypair(keypair_name=f"t{n}", public_key=public_key())
                    with self.lock:
                        self.acked_pairs.append(kp.keypair.keypair_id)
            except BceHttpClientError as exc:
                code = exc.code.decode() if isinstance(exc.code, bytes) else exc.code
                with self.lock:
                    self.errors.append((exc.status_code, code))
                time.sleep(0.02)  # a client backing off

    def acked(self) -> int:
        with self.lock:
            return len(self.acked_pairs) + len(self.acked_instances)

    def wait_for(self, what, timeout: float, why: str) -> None:
        deadline = time.monotonic() + timeout
        while not what():
            assert time.monotonic() < deadline, why
            time.sleep(0.02)

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)


def test_database_restart_under_load(own_cluster, tmp_path):
    _, url = own_cluster.create_database("outage")
    srv = Server(tmp_path / "srv", {"AK" + secrets.token_hex(6): secrets.token_hex(16)},
                 extra_args=["--transition-seconds", "0"], database_url=url).start()
    try:
        with Load(srv) as load:
            for mode in ("fast", "immediate"):  # a clean shutdown, then a crash
                before = load.acked()
                load.wait_for(lambda: load.acked() >= before + 20, 30, "no progress before the outage")
                own_cluster.stop(mode)
                seen = len(load.errors)
                load.wait_for(lambda: len(load.errors) >= seen + 5, 30, "no errors while down")
                while_down = load.acked()
                own_cluster.start()
                # no restart of localbcc: it reconnects by itself
                load.wait_for(lambda: load.acked() >= while_down + 20, 30,
                              f"no recovery after a {mode} restart")
        # while the database was gone, every answer was a 503 ServiceUnavailable
        assert load.errors and set(load.errors) == {(503, "ServiceUnavailable")}
        # nothing acknowledged was lost, whether the database stopped or crashed
        pairs = {r[0] for r in query(srv, "SELECT id FROM keypairs")}
        assert set(load.acked_pairs) <= pairs
        instances = {r[0] for r in query(srv, "SELECT id FROM instances")}
        assert set(load.acked_instances) <= instances
        c = strict_client(srv)
        assert c.get_keypair(load.acked_pairs[-1]).keypair.keypair_id == load.acked_pairs[-1]
    finally:
        srv.stop()


def test_connection_pool_is_bounded(backend, pg_cluster, tmp_path):
    name, url = pg_cluster.create_database("pool")
    srv = Server(tmp_path / "srv", {"AK" + secrets.token_hex(6): secrets.token_hex(16)},
                 extra_args=["--db-pool-size", "2", "--db-max-overflow", "1",
                             "--transition-seconds", "0"], database_url=url).start()
    peak, stop = [0], threading.Event()

    def sample() -> None:
        with pg_cluster.admin() as conn:
            while not stop.is_set():
                n = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                                 "AND application_name = 'localbcc'", (name,)).fetchone()[0]
                peak[0] = max(peak[0], n)
                time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        def burst(n: int) -> None:
            c = strict_client(srv)
            for _ in range(4):
                c.import_keypair(keypair_name=f"b{n}", public_key=public_key())
                c.list_keypairs(max_keys=1000)

        threads = [threading.Thread(target=burst, args=(n,)) for n in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stop.set()
        sampler.join()
        assert 1 <= peak[0] <= 3  # pool size 2 + overflow 1, under 24 concurrent clients
        assert query(srv, "SELECT count(*) FROM keypairs")[0][0] == 96  # and none refused
    finally:
        stop.set()
        srv.stop()
        pg_cluster.drop_database(name)
