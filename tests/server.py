"""A real `localbcc serve` process for tests: start, wait for /healthz, kill, restart."""
from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from baidubce.auth.bce_credentials import BceCredentials
from baidubce.bce_client_configuration import BceClientConfiguration
from baidubce.services.bcc.bcc_client import BccClient

ROOT = Path(__file__).resolve().parent.parent
LOCALBCC = [sys.executable, "-m", "localbcc.cli"]


def wait_healthy(proc: subprocess.Popen, endpoint: str, log_path: Path, timeout: float) -> None:
    """Poll /healthz until it answers 200; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://{endpoint}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not become healthy: {log_path.read_text()[-3000:]}")


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A port no other server of this test run was given, free on 127.0.0.1 and
    on 127.16.0.1. The SSH endpoints listen on 127.16.0.N (the address layout),
    where a probe of 127.0.0.1 alone cannot see another test server's: two
    servers given one port by chance would each reach the other's instances
    ("REMOTE HOST IDENTIFICATION HAS CHANGED")."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.16.0.1", port))
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:  # (no 127.16/12 here: the port layout)
                    continue
        _HANDED_OUT.add(port)
        return port


_SSH_PORTS: dict[str, int] = {}


def ssh_port_for(database: str) -> int:
    """The SSH port of every test server on ``database``: its own, not the
    default 2222. There a developer's own `localbcc serve` may be running, and
    the suite's servers would collide with each other (a server whose
    endpoints are taken retries the binds every 2 s). Servers sharing a
    database must agree on it, as one of them serves for all."""
    return _SSH_PORTS.setdefault(database, free_port())


class Server:
    """One server process over one data directory; restartable."""

    def __init__(self, data_dir: Path, credentials: dict[str, str], *, extra_args=(),
                 env: dict[str, str] | None = None, database_url: str | None = None):
        self.data_dir = data_dir
        self.credentials = credentials
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.database_url = database_url
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "server.log"

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def backend(self) -> str:
        return "postgresql" if self.database_url else "sqlite"

    def database(self) -> str:
        """The server's database as a SQLAlchemy URL (to check state in SQL)."""
        from localbcc.store.urls import normalize_url, sqlite_url

        return normalize_url(self.database_url) if self.database_url else sqlite_url(self.data_dir.resolve())

    def start(self, timeout: float = 20.0) -> "Server":
        args = LOCALBCC + ["serve", "--port", str(self.port), "--data-dir", str(self.data_dir),
                           *self.extra_args]
        if self.database_url:
            args += ["--database-url", self.database_url]
        if "--ssh-port" not in self.extra_args and "LOCALBCC_SSH_PORT" not in self.env:
            args += ["--ssh-port", str(ssh_port_for(self.database()))]
        env = os.environ | {"LOCALBCC_CREDENTIALS": ",".join(f"{a}:{s}" for a, s in self.credentials.items()),
                            "PYTHONUNBUFFERED": "1"} | self.env
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        wait_healthy(self.proc, self.endpoint, self.log_path, timeout)
        return self

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def client(self, access_key: str | None = None) -> BccClient:
        ak = access_key or next(iter(self.credentials))
        config = BceClientConfiguration(credentials=BceCredentials(ak, self.credentials[ak]),
                                        endpoint=self.endpoint)
        return BccClient(config)
