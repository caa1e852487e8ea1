"""Shared fixtures: real server processes and SDK clients.

Every test that uses ``server``, ``client`` or ``fresh_server`` runs once per
storage backend: ``sqlite`` and ``postgresql`` (a throw-away PostgreSQL server,
tests/postgres/cluster.py, one fresh database per server). Choose with
``--backend sqlite --backend postgresql`` or LOCALBCC_TEST_BACKENDS=sqlite,postgresql;
by default both run when PostgreSQL is installed. A test that only makes sense
on some backends says so with ``@pytest.mark.backends("sqlite")``.
"""
from __future__ import annotations

import os
import secrets
from typing import Callable

import pytest

from .postgres import cluster as pgcluster
from .server import Server

BACKENDS = ("sqlite", "postgresql")

# Every Store of the suite, in process and in the servers it starts, refuses a
# transaction on the event loop that bypasses the unit of work (store/db.py).
os.environ["LOCALBCC_CHECK_UNITS"] = "1"


def pytest_addoption(parser):
    parser.addoption("--backend", action="append", choices=BACKENDS, default=None,
                     help="storage backend(s) to run server tests on (repeatable); default: "
                          "$LOCALBCC_TEST_BACKENDS, else sqlite plus postgresql if installed")


def pytest_configure(config):
    config.addinivalue_line("markers", "backends(*names): run this test only on these "
                                       "storage backends (sqlite, postgresql)")
    config.stash[_BACKENDS_KEY] = _chosen_backends(config)


_BACKENDS_KEY = pytest.StashKey[list]()


def _chosen_backends(config) -> list[str]:
    chosen = config.getoption("--backend")
    if not chosen:
        env = os.environ.get("LOCALBCC_TEST_BACKENDS", "").strip()
        if env:
            chosen = [b.strip() for b in env.split(",") if b.strip()]
            unknown = set(chosen) - set(BACKENDS)
            if unknown:
                raise pytest.UsageError(f"LOCALBCC_TEST_BACKENDS: unknown backend(s) {sorted(unknown)}")
        else:
            chosen = ["sqlite"] + (["postgresql"] if pgcluster.available() else [])
    if "postgresql" in chosen and not pgcluster.available():
        raise pytest.UsageError("the postgresql backend was asked for, but no PostgreSQL server "
                                "binaries were found (apt-get install postgresql, or set LOCALBCC_PG_BIN)")
    return list(dict.fromkeys(chosen))


def pytest_report_header(config):
    from localbcc import compiled

    return [f"localbcc storage backends: {', '.join(config.stash[_BACKENDS_KEY])}",
            f"localbcc build: {compiled.STATE}"]


def pytest_terminal_summary(terminalreporter):
    """Say loudly, last, when a compiled build was there but not tested: the
    servers ran every module from its source (an edit since `make setup`), so
    this run says nothing about the compiled request path CI and users run."""
    from localbcc import compiled

    if compiled.STATE == "compiled" or not compiled.extensions():
        return
    deliberate = os.environ.get("LOCALBCC_PURE", "") not in ("", "0")
    terminalreporter.write_sep("=", f"localbcc ran as {compiled.STATE}", yellow=True, bold=True)
    if not deliberate:
        terminalreporter.write_line("the compiled build is older than the sources: `make test` "
                                    "builds it again and tests the compiled request path",
                                    yellow=True, bold=True)


def pytest_generate_tests(metafunc):
    if "backend" not in metafunc.fixturenames:
        return
    backends = metafunc.config.stash[_BACKENDS_KEY]
    marker = metafunc.definition.get_closest_marker("backends")
    if marker is not None:
        backends = [b for b in backends if b in marker.args]
    metafunc.parametrize("backend", backends, indirect=True, scope="session")


@pytest.fixture(scope="session")
def backend(request):
    """The storage backend of this test's servers: "sqlite" or "postgresql"."""
    return getattr(request, "param", "sqlite")


@pytest.fixture(scope="session")
def pg_cluster():
    """A throw-away PostgreSQL server for the whole session (started on first use)."""
    cluster = pgcluster.PgCluster()
    yield cluster
    cluster.destroy()


def _database_url(request, backend: str, prefix: str) -> tuple[str | None, Callable[[], None]]:
    """A fresh database for one server: (URL or None for SQLite, cleanup)."""
    if backend != "postgresql":
        return None, lambda: None
    cluster = request.getfixturevalue("pg_cluster")
    name, url = cluster.create_database(prefix)
    return url, lambda: cluster.drop_database(name)


def _creds(n: int = 3) -> dict[str, str]:
    return {f"AK{i}{secrets.token_hex(6)}": secrets.token_hex(16) for i in range(n)}


@pytest.fixture(scope="session")
def server(tmp_path_factory, request, backend):
    """One shared server (transition time 0.2 s) for tests that create their own resources.
    Its instance quota is out of reach: many tests' instances add up in its accounts
    (the quota itself is tested on servers of its own, tests/api/test_quota.py)."""
    url, cleanup = _database_url(request, backend, "shared")
    srv = Server(tmp_path_factory.mktemp(f"shared-{backend}"), _creds(),
                 extra_args=["--transition-seconds", "0.2", "--instance-quota", "100000"],
                 database_url=url).start()
    yield srv
    srv.stop()
    cleanup()


@pytest.fixture
def fresh_server(tmp_path, request, backend):
    """A private server (own data dir; on PostgreSQL its own new database), for
    tests about quotas, restarts and crashes."""
    servers, cleanups = [], []

    def make(*extra_args, **kw) -> Server:
        if "database_url" not in kw:
            kw["database_url"], cleanup = _database_url(request, backend, "fresh")
            cleanups.append(cleanup)
        srv = Server(tmp_path / f"srv{len(servers)}", _creds(), extra_args=extra_args, **kw)
        servers.append(srv)
        return srv.start()

    yield make
    for srv in servers:
        srv.stop()
    for cleanup in cleanups:
        cleanup()


@pytest.fixture
def fresh_database(tmp_path, request, backend):
    """Makes new empty databases of this test's backend: ``make(prefix) -> SQLAlchemy URL``
    (a plain postgresql:// URL, or a SQLite file in its own directory)."""
    cleanups = []

    def make(prefix: str = "db") -> str:
        url, cleanup = _database_url(request, backend, prefix)
        cleanups.append(cleanup)
        if url is None:
            path = tmp_path / f"{prefix}{len(cleanups)}"
            path.mkdir()
            url = f"sqlite:///{path / 'localbcc.db'}"
        return url

    yield make
    for cleanup in cleanups:
        cleanup()


@pytest.fixture
def client(server):
    return server.client()
