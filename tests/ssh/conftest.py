"""Fixtures of the SSH tests: one SQLite server with SSH on a free port shared
by this package's tests (each test makes its own instances), and key files."""
from __future__ import annotations

import secrets

import pytest

from ..server import Server, free_port

TRANSITION = "0.3"


def ssh_args(*extra: str) -> list[str]:
    """Server options for an SSH test server: a private SSH port, so parallel
    runs on one machine do not collide."""
    return ["--transition-seconds", TRANSITION, "--ssh-port", str(free_port()), *extra]


@pytest.fixture(scope="package")
def ssh_server(tmp_path_factory):
    creds = {f"AKssh{i}{secrets.token_hex(4)}": secrets.token_hex(16) for i in range(2)}
    srv = Server(tmp_path_factory.mktemp("ssh"), creds, extra_args=ssh_args()).start()
    yield srv
    srv.stop()


@pytest.fixture
def sdk(ssh_server):
    return ssh_server.client()
