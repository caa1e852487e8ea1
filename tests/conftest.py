"""Shared fixtures: real server processes and SDK clients."""
from __future__ import annotations

import secrets

import pytest

from .server import Server


def _creds(n: int = 3) -> dict[str, str]:
    return {f"AK{i}{secrets.token_hex(6)}": secrets.token_hex(16) for i in range(n)}


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One shared server (transition time 0.2 s) for tests that create their own resources."""
    srv = Server(tmp_path_factory.mktemp("shared"), _creds(),
                 extra_args=["--transition-seconds", "0.2"]).start()
    yield srv
    srv.stop()


@pytest.fixture
def fresh_server(tmp_path):
    """A private server, for tests about quotas, restarts and crashes."""
    servers = []

    def make(*extra_args, **kw) -> Server:
        srv = Server(tmp_path / f"srv{len(servers)}", _creds(), extra_args=extra_args, **kw)
        servers.append(srv)
        return srv.start()

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def client(server):
    return server.client()
