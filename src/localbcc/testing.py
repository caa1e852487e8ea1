"""localbcc for other projects' test suites: a real server in a context manager.

    from localbcc.testing import LocalBcc

    with LocalBcc() as bcc:  # `localbcc serve` on free ports, in a temporary directory
        client = bcc.client()  # a bce-python-sdk BccClient signed with bcc's account
        client.create_keypair(keypair_name="ci")

The server is a separate process (``python -m localbcc serve``), exactly what
``localbcc serve`` runs, so the SDK meets the same wire format, signature
checks and durability as anywhere else. It gets a free HTTP port, a free SSH
port, a fresh account and, unless ``data_dir`` is given, a temporary data
directory that is removed when it stops. Extra ``serve`` options go in
``args`` (``LocalBcc("--transition-seconds", "0")``).
"""
from __future__ import annotations

import http.client
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


class LocalBcc:
    def __init__(self, *args: str, data_dir: str | Path | None = None,
                 start_timeout: float = 30.0):
        self.args = list(args)
        self.access_key, self.secret_key = f"AKtest{secrets.token_hex(8)}", secrets.token_hex(16)
        self._own_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="localbcc-")) if data_dir is None else Path(data_dir)
        self.port = _free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.log = self.data_dir / "localbcc-testing.log"  # the server's output
        self.start_timeout = start_timeout
        self._proc: subprocess.Popen | None = None

    def start(self) -> "LocalBcc":
        """Start the server; return once it answers ``GET /healthz``."""
        command = [sys.executable, "-m", "localbcc", "serve", "--port", str(self.port),
                   "--data-dir", str(self.data_dir), "--ssh-port", str(_free_port()),
                   "--credentials", f"{self.access_key}:{self.secret_key}", *self.args]
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self._proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while not _healthy(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                why = self._log_tail()
                self.stop()
                raise RuntimeError(f"localbcc did not start: {why}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove the
        temporary data directory."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def client(self, **config: Any):
        """A ``baidubce`` BccClient for this server; ``config`` goes to
        BceClientConfiguration (e.g. ``connection_timeout_in_mills``)."""
        from baidubce.auth.bce_credentials import BceCredentials
        from baidubce.bce_client_configuration import BceClientConfiguration
        from baidubce.services.bcc.bcc_client import BccClient

        credentials = BceCredentials(self.access_key, self.secret_key)
        return BccClient(BceClientConfiguration(credentials=credentials, endpoint=self.endpoint,
                                                **config))

    def __enter__(self) -> "LocalBcc":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _log_tail(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no output"
        return "\n".join(lines[-10:]) or "no output"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
