"""A throw-away PostgreSQL server for tests: initdb into /tmp, listen on a free
loopback port and a private unix socket, trust authentication.

As root, the server runs as the unprivileged ``postgres`` user (runuser);
otherwise as the current user. Binaries come from ``$LOCALBCC_PG_BIN``, the
PATH, or the newest /usr/lib/postgresql/*/bin (Debian's layout).
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from ..server import free_port

# Fast and still crash-safe against a killed server process: fsync off (the
# page cache survives a process crash), but synchronous_commit stays on, so an
# acknowledged commit is in the kernel before the client hears of it.
SERVER_OPTS = {
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
    "log_lock_waits": "on",
    "deadlock_timeout": "200ms",
}


def pg_bin_dir() -> Path | None:
    """The directory holding initdb/pg_ctl/postgres, or None if there is none."""
    env = os.environ.get("LOCALBCC_PG_BIN")
    if env:
        return Path(env)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    return versions[-1].parent if versions else None


def available() -> bool:
    bindir = pg_bin_dir()
    if bindir is None or not (bindir / "pg_ctl").exists():
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return False
    return True


class PgCluster:
    """One PostgreSQL server in a temporary directory."""

    def __init__(self, name: str = "localbcc-pg"):
        bindir = pg_bin_dir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found (install the Debian package "
                               "'postgresql' or set LOCALBCC_PG_BIN)")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/tmp"))
        self.data = self.root / "data"
        self.sock = self.root / "sock"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.user = "localbcc"
        self.password = "localbcc"
        self._as_root = os.geteuid() == 0
        if self._as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.sock.mkdir()
        if self._as_root:
            os.chown(self.sock, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C", "--no-sync")
        conf = self.data / "postgresql.conf"
        with open(conf, "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.sock}'\n")
            for key, value in SERVER_OPTS.items():
                f.write(f"{key} = '{value}'\n")
        self.start()
        with self.admin() as conn:
            conn.execute(f"CREATE ROLE {self.user} LOGIN CREATEDB PASSWORD '{self.password}'")
        self._next_db = 0

    # -- processes --------------------------------------------------------------------

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / tool), *args]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, cwd=self.root)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{tool} failed: {proc.stdout[-2000:]}")
        return proc

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")
        self.wait_ready()

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: like a crash (recovery on start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop",
                  check=False)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.admin_dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    # -- connections and databases ----------------------------------------------------

    def admin_dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.sock} port={self.port} user=postgres dbname={dbname}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.admin_dsn(dbname), autocommit=True)

    def url(self, dbname: str) -> str:
        """A plain postgresql:// URL, as a user would write it (TCP, password)."""
        return f"postgresql://{self.user}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> tuple[str, str]:
        """A new empty database owned by the test role: (name, URL)."""
        self._next_db += 1
        name = f"{prefix}_{os.getpid()}_{self._next_db}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER {self.user}')
        return name, self.url(name)

    def drop_database(self, name: str) -> None:
        with self.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""
