"""Schema revisions on both backends: `serve` creates the schema on an empty
database, refuses an older, newer or foreign one with a message that says what
to run, and `db upgrade` / `db check` do what they say."""
from __future__ import annotations

import secrets
import subprocess
import threading

import pytest
from sqlalchemy import create_engine, inspect, text

from localbcc.store.db import Store
from localbcc.store.migrate import SCHEMA_REVISION
from localbcc.store.urls import normalize_url
from localbcc.store.schema import metadata

from ..server import LOCALBCC, ROOT, Server, free_port


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*LOCALBCC, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout)


def serve_once(url: str, tmp_path) -> subprocess.CompletedProcess:
    """`localbcc serve` on a database it must refuse: it exits at once."""
    return cli("serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "unused"),
               "--database-url", url)


def revision_of(url: str) -> str | None:
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def execute(url: str, sql: str) -> None:
    engine = create_engine(normalize_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    finally:
        engine.dispose()


def test_the_code_expects_the_newest_migration(fresh_database):
    store = Store(fresh_database())
    try:
        assert store.known_revisions()[-1] == SCHEMA_REVISION
    finally:
        store.dispose()


def test_serve_creates_the_schema_on_an_empty_database(fresh_server, backend):
    srv = fresh_server()
    assert srv.backend == backend
    assert revision_of(srv.database()) == SCHEMA_REVISION
    assert srv.client().list_keypairs().keypairs == []


def test_migrations_create_exactly_schema_py(fresh_database):
    """Alembic's autogenerate finds nothing to add, drop or change."""
    from alembic.migration import MigrationContext
    from alembic.autogenerate import compare_metadata

    store = Store(fresh_database())
    try:
        store.upgrade()
        with store.engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
        assert diffs == []
    finally:
        store.dispose()


def test_serve_refuses_an_older_schema_until_db_upgrade(fresh_database, tmp_path):
    url = fresh_database()
    store = Store(url)
    known = store.known_revisions()
    if len(known) < 2:
        pytest.skip("only one schema revision exists")
    store.upgrade(known[-2])
    store.dispose()

    refused = serve_once(url, tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert f"revision {known[-2]}, older" in refused.stderr
    assert "localbcc db upgrade" in refused.stderr
    checked = cli("db", "check", "--database-url", url)
    assert checked.returncode == 2 and "localbcc db upgrade" in checked.stderr

    upgraded = cli("db", "upgrade", "--database-url", url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"revision {SCHEMA_REVISION}" in upgraded.stdout
    assert revision_of(url) == SCHEMA_REVISION
    assert cli("db", "check", "--database-url", url).returncode == 0  # serve would start now


def test_serve_and_upgrade_refuse_a_newer_schema(fresh_database, tmp_path):
    url = fresh_database()
    store = Store(url)
    store.upgrade()
    store.dispose()
    execute(url, "UPDATE alembic_version SET version_num = '9999'")

    for result in (serve_once(url, tmp_path), cli("db", "upgrade", "--database-url", url)):
        assert result.returncode == 2, result.stderr
        assert "revision 9999" in result.stderr and "newer localbcc" in result.stderr
    assert revision_of(url) == "9999"  # untouched


def test_serve_and_upgrade_refuse_a_database_that_is_not_localbccs(fresh_database, tmp_path):
    url = fresh_database()
    execute(url, "CREATE TABLE something_else (x INTEGER)")
    for refused in (serve_once(url, tmp_path), cli("db", "upgrade", "--database-url", url),
                    cli("db", "check", "--database-url", url)):
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "not a localbcc database" in refused.stderr
    engine = create_engine(normalize_url(url))
    try:
        with engine.connect() as conn:  # none of localbcc's tables were added
            assert inspect(conn).get_table_names() == ["something_else"]
    finally:
        engine.dispose()


def test_servers_starting_together_on_an_empty_database(fresh_database, tmp_path):
    """Two processes race to create the schema and the same accounts: both start."""
    url = fresh_database()
    creds = {f"AK{i}{secrets.token_hex(4)}": secrets.token_hex(8) for i in range(3)}
    servers = [Server(tmp_path / f"s{i}", creds, database_url=url) for i in range(2)]
    errors = []

    def start(srv):
        try:
            srv.start(timeout=60)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert revision_of(url) == SCHEMA_REVISION
        engine = create_engine(normalize_url(url))
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT access_key, secret_key FROM accounts")).all()
        engine.dispose()
        assert sorted(rows) == sorted(creds.items())
        kp = servers[0].client().create_keypair(keypair_name="shared").keypair
        assert servers[1].client().get_keypair(kp.keypair_id).keypair.name == "shared"
    finally:
        for s in servers:
            s.stop()
