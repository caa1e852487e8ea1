"""`make bench`: drive localbcc and a bare-ASGI hello-world with wrk; print ratios.

Every request localbcc receives is signed (bce-auth-v1, with localbcc.auth.sign
and a long expiration) and verified for real: the requests are built and signed
here, once, and bench/replay.lua replays them. Both servers run on the same
uvicorn configuration (uvloop + httptools, one process), and wrk runs on the
same machine with one thread.

Scenarios (see issue 5 and bench/RESULTS.md):

1. signed GET /v2/keypair/{id}, throughput relative to hello-world
2. PUT /v2/keypair/{id}?attach on stopped instances, alternating two pairs so
   every call changes a binding durably; non-200 answers count as failures
3. GET /v2/keypair?maxKeys=100 with 100 and with 100,000 pairs stored (latency)
4. attach with 1 and with 100 instance ids in one call (latency)
5. cold start: spawning `localbcc serve` to the first 200 from /healthz
6. server RSS with 100,000 pairs and 10,000 instances stored, after warm-up
   (plus the attach figure of `--durability full`, without a target)

The throughput ratios (1, 2 and the --durability full attach) are measured
in rounds: hello-world, then each localbcc scenario, one second each, both
servers running side by side. Each round gives a ratio; the figure is the
median of the rounds. The speed of a shared 2-core machine moves by tens of
percent from one second to the next, so a baseline measured minutes apart
would say more about that than about localbcc. The runner also warns when
other processes keep the CPU busy.

Usage: python bench/run.py [--quick] [--record] [--profile]
  --quick    shorter runs (a smoke test of the benchmark itself)
  --record   append this run's figures to bench/RESULTS.md
  --profile  also sample the server with py-spy during scenarios 1 and 2
             (pip install -e '.[bench]'); prints where the time goes
"""
from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from localbcc import compiled
from localbcc.auth import format_timestamp, sign
from localbcc.clock import Clock
from localbcc.domain.keys import fingerprint_md5, parse_public_key
from localbcc.domain.validation import new_id
from localbcc.store.accounts import Accounts
from localbcc.store.db import Store
from localbcc.store.urls import sqlite_url
from localbcc.store.schema import instances, keypairs

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
LOCALBCC = Path(sys.executable).with_name("localbcc")
AK, SK = "AKbench0000000000000000000000000", "SKbench0000000000000000000000000"
LINUX_IMAGE = "m-Ubt2204a"
EXPIRATION = 7200  # seconds: every pre-signed request stays valid for the whole run
#: Pause before each slice of alternating runs: the previous server's background
#: work (its WAL checkpoint, up to 0.1 s after its last write) ends first.
SLICE_GAP_S = 0.2

TARGETS = {  # figure -> (comparison, target)
    "S1 GET / hello": (">=", 0.35),
    "S2 attach / hello": (">=", 0.20),
    "S3 list 100k / list 100": ("<=", 1.5),
    "S4 attach 100 ids / 1 id": ("<=", 5.0),
    "S5 cold start (s)": ("<=", 1.0),
    "S6 RSS (MB)": ("<=", 150.0),
}


@dataclass
class Timing:
    """Durations of one benchmark run: throughput scenarios use more
    connections, latency scenarios one (no queueing in the figure)."""

    throughput_s: int = 6
    latency_s: int = 4
    warmup_s: int = 1
    connections: int = 16
    cold_starts: int = 5
    rounds: int = 8  # of the throughput ratios: hello-world and scenarios 1 and 2, 1 s each


# -- the machine and wrk ----------------------------------------------------------------

def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk not found: installing the Debian package", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    path = shutil.which("wrk")
    if not path:
        sys.exit("could not install wrk")
    return path


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (f"{os.cpu_count()} cores ({model}), {mem_kb / 1024 / 1024:.1f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}; "
            f"localbcc's request path: {compiled.STATE}")


def busy_cpus() -> float:
    """The 1-minute load average: how many CPUs other work keeps busy right now."""
    return os.getloadavg()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- seeding the database (directly, not through HTTP) -------------------------------------

def _ed25519_rows(count: int) -> list[tuple[str, str, str]]:
    """(OpenSSH line, fingerprint, blob sha256) of ``count`` fresh ed25519 keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    rows = []
    for _ in range(count):
        line = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode("ascii")
        blob = base64.b64decode(line.split()[1])
        rows.append((line, fingerprint_md5(blob), hashlib.sha256(blob).hexdigest()))
    return rows


def ed25519_keys(count: int) -> list[tuple[str, str, str]]:
    """Real keys, generated on every core (100,000 take about 10 s on one)."""
    workers = os.cpu_count() or 1
    chunks = [count // workers + (i < count % workers) for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        keys = [row for part in pool.map(_ed25519_rows, chunks) for row in part]
    line, fingerprint, _ = keys[0]  # the server would derive the same fingerprint
    assert parse_public_key(line).fingerprint == fingerprint
    return keys


def unique_ids(prefix: str, count: int) -> list[str]:
    ids: set[str] = set()
    while len(ids) < count:
        ids.add(new_id(prefix))
    return sorted(ids)


def seed(data_dir: Path, n_keypairs: int, n_instances: int, bound: int = 0) -> tuple[list[str], list[str]]:
    """A fresh database with ``n_keypairs`` pairs and ``n_instances`` stopped
    instances of the bench account (the key pair quota does not apply here);
    the first ``bound`` instances are bound to the first pairs. Returns the ids."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    store = Store(sqlite_url(data_dir.resolve()))
    store.prepare()
    Accounts(store, Clock()).ensure(f"{AK}:{SK}")
    now = time.time() - 3600
    kp_ids, inst_ids = unique_ids("k-", n_keypairs), unique_ids("i-", n_instances)
    kp_rows = [{"id": kid, "account": AK, "name": f"bench-{i}", "description": "",
                "public_key": line, "fingerprint": fp, "blob_sha256": sha,
                "created_at": now + i * 1e-3}
               for i, (kid, (line, fp, sha)) in enumerate(zip(kp_ids, ed25519_keys(n_keypairs)))]
    inst_rows = [{"id": iid, "account": AK, "name": iid, "hostname": iid.lower(),
                  "description": "", "image_id": LINUX_IMAGE, "instance_type": "N3",
                  "cpu_count": 1, "memory_gb": 1, "zone_name": "cn-bj-a",
                  "payment_timing": "Postpaid", "created_at": now, "state": "Stopped",
                  "transition": None, "transition_until": 0.0,
                  "keypair_id": kp_ids[i] if i < bound else None, "key_in_force_at": None,
                  "admin_pass_hash": None, "first_key_at": None}
                 for i, iid in enumerate(inst_ids)]
    with store.write() as tx:
        for start in range(0, len(kp_rows), 10_000):
            tx.conn.execute(keypairs.insert(), kp_rows[start:start + 10_000])
        for start in range(0, len(inst_rows), 10_000):
            tx.conn.execute(instances.insert(), inst_rows[start:start + 10_000])
    store.dispose()
    return kp_ids, inst_ids


# -- servers ----------------------------------------------------------------------------

def _get_status(port: int, path: str = "/healthz") -> int | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
        return int(head.split()[1])
    except (OSError, IndexError, ValueError):
        return None


class Server:
    def __init__(self, name: str, args: list[str], port: int):
        self.name, self.args, self.port = name, args, port
        self.log = OUT / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> float:
        """Spawn and wait for the first 200 from /healthz; returns the seconds it took."""
        env = os.environ | {"LOCALBCC_CREDENTIALS": f"{AK}:{SK}"}
        with open(self.log, "ab") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, cwd=ROOT)
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited; see {self.log}")
            if _get_status(self.port) == 200:
                return time.perf_counter() - started
            time.sleep(0.002)
        self.stop()
        sys.exit(f"{self.name} did not answer /healthz within {timeout} s; see {self.log}")

    def settle(self, timeout: float = 60.0) -> float:
        """Wait until the server is idle (below 5% of a CPU over two 0.5 s spans): after
        start-up it may still be working (e.g. opening the SSH endpoints of
        10,000 instances), which is not what a scenario measures. Returns the
        seconds waited."""
        started, quiet = time.perf_counter(), 0
        while time.perf_counter() - started < timeout and quiet < 2:  # idle twice in a row
            before = self.cpu_seconds()
            time.sleep(0.5)
            quiet = quiet + 1 if self.cpu_seconds() - before < 0.025 else 0
        return time.perf_counter() - started

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident set size in MB."""
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def localbcc(name: str, data_dir: Path, *extra: str) -> Server:
    """`localbcc serve` with its defaults (one process, SQLite, access log at
    info, SSH endpoints on), except for the ports: several servers run side by
    side, and on one SSH port their instances' endpoints (127.16.0.n) would
    collide, leaving one server retrying thousands of binds every 2 s."""
    port = free_port()
    return Server(name, [str(LOCALBCC), "serve", "--port", str(port), "--data-dir", str(data_dir),
                         "--ssh-port", str(free_port()), *extra], port)


def hello() -> Server:
    port = free_port()
    return Server("hello", [sys.executable, str(BENCH / "hello.py"), str(port)], port)


# -- pre-signed requests and wrk ------------------------------------------------------------

def signed_request(port: int, method: str, path: str, query: str = "", body: bytes = b"") -> bytes:
    """A raw HTTP/1.1 request signed the way the Python SDK signs (default header set)."""
    host = f"127.0.0.1:{port}"
    date = format_timestamp(time.time())
    headers = [(b"host", host.encode()), (b"x-bce-date", date.encode())]
    if body:
        headers += [(b"content-type", b"application/json; charset=utf-8"),
                    (b"content-length", str(len(body)).encode())]
    pairs = [(k, v) for k, _, v in (item.partition("=") for item in query.split("&") if item)]
    auth = sign(AK, SK, method, path, pairs, headers, date, EXPIRATION)
    lines = [f"{method} {path}{'?' + query if query else ''} HTTP/1.1",
             *(f"{name.decode()}: {value.decode()}" for name, value in headers),
             "User-Agent: localbcc-bench", f"Authorization: {auth}", "", ""]
    return "\r\n".join(lines).encode() + body


def attach_requests(port: int, pairs: tuple[str, str], instance_ids: list[str],
                    per_call: int) -> list[bytes]:
    """Attach calls over groups of ``per_call`` instances: every group gets the
    first pair, then every group the second, and so on. Each call therefore
    changes the binding of its instances, provided the calls to one group are
    more than the number of connections apart (many groups, few connections)."""
    groups = [instance_ids[i:i + per_call] for i in range(0, len(instance_ids), per_call)]
    assert all(len(g) == per_call for g in groups) and len(groups) >= 2
    return [signed_request(port, "PUT", f"/v2/keypair/{pair}", "attach",
                           json.dumps({"instanceIds": group}).encode())
            for pair in pairs for group in groups]


@dataclass
class Run:
    name: str
    requests: int
    seconds: float
    statuses: dict[str, int]
    first_error: str | None
    socket_errors: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    connections: int
    cpu_s: float  # server CPU time during the run

    @property
    def cpu_us(self) -> float:
        """Server CPU time per request: unlike req/s, barely moved by other
        processes competing for the CPU."""
        return self.cpu_s / max(self.requests, 1) * 1e6

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != "200") + self.socket_errors


def _merge(name: str, runs: list[Run]) -> Run:
    """One Run from slices: totals and the request-weighted mean latency; the
    percentiles are the slices' medians (wrk's histograms are not kept)."""
    requests = sum(r.requests for r in runs)
    statuses: dict[str, int] = {}
    for r in runs:
        for status, n in r.statuses.items():
            statuses[status] = statuses.get(status, 0) + n
    return Run(name, requests, sum(r.seconds for r in runs), statuses,
               next((r.first_error for r in runs if r.first_error), None),
               sum(r.socket_errors for r in runs),
               sum(r.mean_ms * r.requests for r in runs) / max(requests, 1),
               statistics.median(r.p50_ms for r in runs), statistics.median(r.p99_ms for r in runs),
               runs[0].connections, sum(r.cpu_s for r in runs))


class Wrk:
    def __init__(self, binary: str, timing: Timing, profile: bool = False):
        self.binary, self.timing = binary, timing
        self.runs: list[Run] = []
        self.profile = profile

    def run(self, name: str, server: Server, requests: list[bytes], *, seconds: int,
            connections: int, record: bool = True) -> Run:
        file = OUT / f"{name.replace(' ', '_').replace('/', '_')}.req"
        file.write_bytes(b"\0".join(requests))
        spy = self._spy(name, server, seconds) if record and self.profile else None
        cpu_before = server.cpu_seconds()
        out = subprocess.run(
            [self.binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
             "-s", str(BENCH / "replay.lua"), f"http://127.0.0.1:{server.port}", "--", str(file)],
            capture_output=True, text=True, check=True).stdout
        cpu = server.cpu_seconds() - cpu_before
        if spy is not None:
            spy.wait()
            print_profile(OUT / f"{file.stem}.profile.txt")
        line = next((ln for ln in out.splitlines() if ln.startswith("BENCH ")), None)
        if line is None:
            sys.exit(f"wrk printed no summary:\n{out}")
        raw = json.loads(line[len("BENCH "):])
        result = Run(name, raw["requests"], raw["duration_us"] / 1e6, raw["statuses"],
                     raw["first_error"], raw["socket_errors"], raw["mean_us"] / 1000,
                     raw["p50_us"] / 1000, raw["p99_us"] / 1000, connections, cpu)
        if record:
            self.runs.append(result)
            self._print(result)
        return result

    @staticmethod
    def _print(result: Run) -> None:
        print(f"  {result.name:<34} {result.rps:>9.0f} req/s  mean {result.mean_ms:6.3f} ms  "
              f"p50 {result.p50_ms:6.3f}  p99 {result.p99_ms:6.3f}  "
              f"cpu {result.cpu_us:5.0f} us/req  failures {result.failures}", flush=True)
        if result.failures:
            print(f"    statuses {result.statuses}; first error: {result.first_error}")

    def alternate(self, *scenarios: tuple[str, Server, list[bytes], list[list[bytes]]]) -> list[Run]:
        """Latency runs of several scenarios in alternating one-second slices
        (after a warm-up each), one merged Run per scenario. A scenario gives
        its warm-up requests and the requests of each slice (attach calls need
        instances of their own in every slice)."""
        for name, server, warmup, _ in scenarios:
            self.run(name + " warm-up", server, warmup, seconds=self.timing.warmup_s,
                     connections=1, record=False)
        slices: dict[str, list[Run]] = {name: [] for name, _, _, _ in scenarios}
        for i in range(self.timing.latency_s):
            for name, server, _, per_slice in scenarios:
                time.sleep(SLICE_GAP_S)
                slices[name].append(self.run(name, server, per_slice[i], seconds=1,
                                             connections=1, record=False))
        merged = [_merge(name, slices[name]) for name, _, _, _ in scenarios]
        for run in merged:
            self._print(run)
            self.runs.append(run)
        return merged

    def _spy(self, name: str, server: Server, seconds: int) -> subprocess.Popen | None:
        spy = shutil.which("py-spy", path=str(LOCALBCC.parent)) or shutil.which("py-spy")
        if spy is None:
            print("  (py-spy not installed: pip install -e '.[bench]')")
            return None
        out = OUT / f"{name.replace(' ', '_').replace('/', '_')}.profile.txt"
        return subprocess.Popen([spy, "record", "--pid", str(server.proc.pid), "--duration",
                                 str(seconds), "--rate", "250", "--format", "raw", "--output",
                                 str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def rounds(self, baseline: tuple[str, Server, list[bytes]],
               scenarios: list[tuple[str, Server, list[list[bytes]]]],
               warmups: list[list[bytes]]) -> tuple[Run, list[Run], list[list[float]]]:
        """Throughput in rounds of one-second slices: the baseline, then every
        scenario with its requests for that round (attach calls need fresh
        instances each round). Returns the merged baseline Run, the merged Run
        of each scenario, and each scenario's throughput ratio per round."""
        base_name, base_server, base_requests = baseline
        slice_s, connections = 1, self.timing.connections
        self.run(base_name + " warm-up", base_server, base_requests, seconds=self.timing.warmup_s,
                 connections=connections, record=False)
        for (name, server, _), warmup in zip(scenarios, warmups):
            self.run(name + " warm-up", server, warmup, seconds=self.timing.warmup_s,
                     connections=connections, record=False)
        base_slices: list[Run] = []
        slices: list[list[Run]] = [[] for _ in scenarios]
        for r in range(self.timing.rounds):
            time.sleep(SLICE_GAP_S)
            base_slices.append(self.run(base_name, base_server, base_requests, seconds=slice_s,
                                        connections=connections, record=False))
            for i, (name, server, per_round) in enumerate(scenarios):
                time.sleep(SLICE_GAP_S)
                slices[i].append(self.run(name, server, per_round[r], seconds=slice_s,
                                          connections=connections, record=False))
        merged = [_merge(base_name, base_slices)] + [
            _merge(name, runs) for (name, _, _), runs in zip(scenarios, slices)]
        for run in merged:
            self._print(run)
            self.runs.append(run)
        ratios = [[s.rps / b.rps for s, b in zip(runs, base_slices)] for runs in slices]
        return merged[0], merged[1:], ratios


def print_profile(path: Path, top: int = 22) -> None:
    """The functions with the largest share of samples (self and callees), from
    py-spy's raw (collapsed stacks) output; frames found in nearly every sample
    (the server's outer loop) are left out."""
    if not path.exists():
        print(f"  (no profile written to {path})")
        return
    total, inclusive = 0, {}
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        for frame in {f.rsplit(":", 1)[0] + ")" for f in stack.split(";")}:
            inclusive[frame] = inclusive.get(frame, 0) + int(count)
    shares = sorted(((n / total, f) for f, n in inclusive.items() if n < 0.9 * total), reverse=True)
    print(f"  profile ({total} samples, {path.name}); share of samples including callees:")
    for share, frame in shares[:top]:
        print(f"    {100 * share:5.1f}%  {frame}")


# -- the scenarios ---------------------------------------------------------------------------

@dataclass
class Figures:
    ratios: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def small_world(data_dir: Path, rounds: int, slices: int):
    """100 pairs; stopped instances in separate pools for each attach run, so
    no run starts on bindings an earlier run left behind."""
    sizes = {"s2_warm": 256, **{f"s2_round{r}": 256 for r in range(rounds)}, "s2_profile": 256,
             "s4one_warm": 32, **{f"s4one_slice{i}": 32 for i in range(slices)},
             "s4many_warm": 400, **{f"s4many_slice{i}": 400 for i in range(slices)}}
    kp_ids, inst_ids = seed(data_dir, 100, sum(sizes.values()))
    pools, at = {}, 0
    for name, size in sizes.items():
        pools[name], at = inst_ids[at:at + size], at + size
    return kp_ids, pools


def attach_scenario(label: str, server: Server, kp_ids: list[str], pools: dict,
                    rounds: int) -> tuple[tuple[str, Server, list[list[bytes]]], list[bytes]]:
    """Scenario 2's attach calls for every round (each on instances of its
    own), and for the warm-up."""
    pair = (kp_ids[0], kp_ids[1])
    per_round = [attach_requests(server.port, pair, pools[f"s2_round{r}"], 1)
                 for r in range(rounds)]
    return (label, server, per_round), attach_requests(server.port, pair, pools["s2_warm"], 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, to test the benchmark")
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    parser.add_argument("--profile", action="store_true", help="py-spy the server in scenarios 1 and 2")
    args = parser.parse_args()
    timing = Timing(2, 2, 1, 16, 3, 2) if args.quick else Timing()
    OUT.mkdir(exist_ok=True)
    for old in [*OUT.glob("*.log"), *OUT.glob("*.profile.txt")]:
        old.unlink()
    wrk = Wrk(ensure_wrk(), timing)
    began = time.perf_counter()
    print(f"machine: {machine()}", flush=True)
    load_before = busy_cpus()
    print(f"load average: {load_before:.2f}\n", flush=True)
    figures = Figures()

    # Scenarios 1, 2 and the --durability full attach: throughput, in rounds
    # alternating with the hello-world (Wrk.rounds); then 4 (latency).
    print("seeding 100 pairs, twice ...", flush=True)
    small_dir, full_dir = OUT / "small", OUT / "full"
    kp_ids, pools = small_world(small_dir, timing.rounds, timing.latency_s)
    full_kp, full_pools = small_world(full_dir, timing.rounds, 0)
    hello_server, server = hello(), localbcc("localbcc-small", small_dir)
    full_server = localbcc("localbcc-full", full_dir, "--durability", "full")
    try:
        for each in (hello_server, server, full_server):
            ready(each)
        port = server.port
        s1_requests = [signed_request(port, "GET", f"/v2/keypair/{k}") for k in kp_ids]
        s2_scenario, s2_warmup = attach_scenario("S2 attach (1 id)", server, kp_ids, pools,
                                                 timing.rounds)
        full_scenario, full_warmup = attach_scenario("attach, --durability full", full_server,
                                                     full_kp, full_pools, timing.rounds)
        hello_run, (s1, s2, full), ratios = wrk.rounds(
            ("hello-world", hello_server, [b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]),
            [("S1 GET keypair", server, [s1_requests] * timing.rounds), s2_scenario,
             full_scenario],
            [s1_requests, s2_warmup, full_warmup])
        s1_ratio, s2_ratio, full_ratio = (statistics.median(r) for r in ratios)
        print(f"  ratios per round: S1 {_spread(ratios[0])}; S2 {_spread(ratios[1])}; "
              f"--durability full {_spread(ratios[2])}", flush=True)
        full_server.stop()
        if args.profile:  # after the measured runs: py-spy slows the server down
            wrk.profile = True
            wrk.run("S1 GET keypair, profiled", server, s1_requests,
                    seconds=timing.throughput_s, connections=timing.connections)
            wrk.run("S2 attach, profiled", server,
                    attach_requests(port, (kp_ids[0], kp_ids[1]), pools["s2_profile"], 1),
                    seconds=timing.throughput_s, connections=timing.connections)
            wrk.profile = False

        # Scenario 4: the two latencies in alternating slices, like scenario 3.
        pair = (kp_ids[2], kp_ids[3])
        slices = range(timing.latency_s)
        one, many = wrk.alternate(
            ("S4 attach 1 id", server, attach_requests(port, pair, pools["s4one_warm"], 1),
             [attach_requests(port, pair, pools[f"s4one_slice{i}"], 1) for i in slices]),
            ("S4 attach 100 ids", server, attach_requests(port, pair, pools["s4many_warm"], 100),
             [attach_requests(port, pair, pools[f"s4many_slice{i}"], 100) for i in slices]))
    finally:
        hello_server.stop()
        server.stop()
        full_server.stop()

    # Scenario 5: cold start on a fresh data directory (schema created) and on
    # an existing one (schema checked).
    fresh, existing = [], []
    for i in range(timing.cold_starts):
        data_dir = OUT / f"cold{i}"
        shutil.rmtree(data_dir, ignore_errors=True)
        for times in (fresh, existing):
            server = localbcc("localbcc-cold", data_dir)
            times.append(server.start())
            server.stop()
        shutil.rmtree(data_dir)
    cold_fresh, cold_existing = statistics.median(fresh), statistics.median(existing)
    print(f"  cold start, fresh data dir: {cold_fresh:.3f} s; existing: {cold_existing:.3f} s "
          f"(medians of {timing.cold_starts})", flush=True)

    # Scenarios 3 (100,000 pairs) and 6 on a big database.
    print("seeding 100,000 pairs and 10,000 instances ...", flush=True)
    seed_started = time.perf_counter()
    big_dir = OUT / "big"
    big_kp, _ = seed(big_dir, 100_000, 10_000, bound=5_000)
    # The 100-pair side gets a database of its own, in the same proportions (an
    # instance per 10 pairs, half of them bound): the small database above has
    # thousands of instances bound to a few pairs, which slows their counts.
    list_dir = OUT / "list100"
    seed(list_dir, 100, 10, bound=5)
    print(f"  seeded in {time.perf_counter() - seed_started:.1f} s", flush=True)
    server, small = localbcc("localbcc-big", big_dir), localbcc("localbcc-list100", list_dir)
    try:
        ready(server)
        ready(small)
        port = server.port
        # The two latencies are measured in alternating one-second slices, so
        # a change in the machine's load affects both alike.
        list_100 = [signed_request(small.port, "GET", "/v2/keypair", "maxKeys=100")]
        list_100k = [signed_request(port, "GET", "/v2/keypair", "maxKeys=100")]
        list_small, list_big = wrk.alternate(
            ("S3 list, 100 stored", small, list_100, [list_100] * timing.latency_s),
            ("S3 list, 100,000 stored", server, list_100k, [list_100k] * timing.latency_s))
        small.stop()
        # Warm-up for the memory figure: reads spread over the whole table.
        step = len(big_kp) // 2000
        wrk.run("S6 warm-up GETs", server,
                [signed_request(port, "GET", f"/v2/keypair/{k}") for k in big_kp[::step]],
                seconds=timing.latency_s, connections=timing.connections)
        wrk.run("S6 warm-up list instances", server,
                [signed_request(port, "GET", "/v2/instance", "maxKeys=1000")],
                seconds=timing.warmup_s, connections=4)
        rss, peak = server.rss_mb()
        print(f"  RSS {rss:.1f} MB (peak {peak:.1f} MB)", flush=True)
    finally:
        small.stop()
        server.stop()

    hello_rps, hello_cpu = hello_run.rps, hello_run.cpu_us
    warnings = []
    if load_before > 1.0:  # measured before the benchmark added its own load
        warnings.append(f"load average {load_before:.1f} at the start: other processes used "
                        f"the CPU, so the figures are low and the ratios noisy")

    figures.ratios = {
        "S1 GET / hello": s1_ratio,
        "S2 attach / hello": s2_ratio,
        "S3 list 100k / list 100": list_big.mean_ms / list_small.mean_ms,
        "S4 attach 100 ids / 1 id": many.mean_ms / one.mean_ms,
        "S5 cold start (s)": cold_fresh,
        "S6 RSS (MB)": rss,
    }
    figures.notes = {
        "S1 GET / hello": f"median of {timing.rounds} rounds ({_spread(ratios[0])}); "
                          f"{s1.rps:.0f} / {hello_rps:.0f} req/s in all; by server CPU time "
                          f"per request {hello_cpu / s1.cpu_us:.3f}",
        "S2 attach / hello": f"median of {timing.rounds} rounds ({_spread(ratios[1])}); "
                             f"{s2.rps:.0f} / {hello_rps:.0f} req/s in all, {s2.failures} "
                             f"failures; by server CPU time per request "
                             f"{hello_cpu / s2.cpu_us:.3f}",
        "S3 list 100k / list 100": f"mean {list_big.mean_ms:.3f} / {list_small.mean_ms:.3f} ms",
        "S4 attach 100 ids / 1 id": f"mean {many.mean_ms:.3f} / {one.mean_ms:.3f} ms",
        "S5 cold start (s)": f"fresh data dir; existing one: {cold_existing:.3f} s",
        "S6 RSS (MB)": f"peak {peak:.1f} MB",
    }
    failures = sum(r.failures for r in wrk.runs)
    report = render(figures, wrk.runs, full, full_ratio, failures, warnings)
    print("\n" + report)
    print(f"benchmark took {time.perf_counter() - began:.0f} s")
    if args.record:
        record(report, load_before)
    passed = all(_passes(name, value) for name, value in figures.ratios.items())
    return 0 if passed and not failures else 1


def _passes(name: str, value: float) -> bool:
    op, target = TARGETS[name]
    return value >= target if op == ">=" else value <= target


def ready(server: Server) -> Server:
    """Start the server and wait until start-up work is over."""
    took = server.start()
    settled = server.settle()
    if settled > 1.5:
        print(f"  {server.name}: answered /healthz after {took:.1f} s, idle after "
              f"{settled:.1f} s more", flush=True)
    return server


def _spread(ratios: list[float]) -> str:
    return f"{min(ratios):.3g}–{max(ratios):.3g}"


def render(figures: Figures, runs: list[Run], full: Run, full_ratio: float, failures: int,
           warnings: list[str]) -> str:
    lines = ["| figure | value | target | result | detail |", "|---|---|---|---|---|"]
    for name, value in figures.ratios.items():
        op, target = TARGETS[name]
        lines.append(f"| {name} | {value:.3g} | {op} {target:g} | "
                     f"{'pass' if _passes(name, value) else 'FAIL'} | {figures.notes[name]} |")
    lines.append(f"| attach, --durability full / hello | {full_ratio:.3g} | (none) | | "
                 f"median of the rounds; {full.rps:.0f} req/s in all, p50 {full.p50_ms:.3f} ms |")
    lines += ["", "| run | connections | req/s | mean ms | p50 ms | p99 ms | server CPU µs/req "
                  "| failures |", "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.name} | {r.connections} | {r.rps:.0f} | {r.mean_ms:.3f} | "
                     f"{r.p50_ms:.3f} | {r.p99_ms:.3f} | {r.cpu_us:.0f} | {r.failures} |")
    if failures:
        lines.append(f"\n{failures} requests failed (non-200 or socket errors): see above.")
    lines += [f"\nWARNING: {w}" for w in warnings]
    return "\n".join(lines)


def record(report: str, load: float) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip() or "unknown"
    if subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "src", "bench"], cwd=ROOT).returncode:
        commit += " with uncommitted changes"
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    with open(BENCH / "RESULTS.md", "a") as f:
        f.write(f"\n## {when}, commit {commit}\n\nMachine: {machine()}; load average "
                f"{load:.2f} at the start\n\n{report}\n")
    print("recorded in bench/RESULTS.md")


if __name__ == "__main__":
    sys.exit(main())
