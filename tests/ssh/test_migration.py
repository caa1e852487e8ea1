"""Migration 0002 gives instances that existed before it a host key, and the
migrated schema matches store/schema.py."""
from __future__ import annotations

import base64
import hashlib

from alembic import command
from sqlalchemy import inspect, text

from localbcc.store.db import Store
from localbcc.store.migrate import SCHEMA_REVISION
from localbcc.store.urls import sqlite_url
from localbcc.store.schema import instances


def test_upgrade_from_0001_gives_every_instance_a_host_key(tmp_path):
    store = Store(sqlite_url(tmp_path))
    try:
        store.upgrade("0001")
        with store.engine.begin() as conn:
            for n in (1, 2):
                conn.execute(text(
                    "INSERT INTO instances (id, account, name, hostname, description, image_id, "
                    "instance_type, cpu_count, memory_gb, zone_name, payment_timing, created_at, "
                    "state, transition, transition_until) VALUES (:id, 'ak', 'n', 'h', '', "
                    "'m-Ubt2204a', 'N3', 1, 1, 'z', 'Postpaid', 0, 'Running', NULL, 0)"),
                    {"id": f"i-old{n}"})
        store.upgrade()
        assert store.current_revision() == SCHEMA_REVISION == "0002"
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT ssh_host_key, ssh_host_public_key, "
                                     "ssh_host_fingerprint, ssh_error FROM instances")).all()
            columns = {c["name"] for c in inspect(conn).get_columns("instances")}
        assert columns == {c.name for c in instances.c}
        assert len(rows) == 2 and rows[0][0] != rows[1][0]
        for seed, public, fingerprint, error in rows:
            assert len(bytes.fromhex(seed)) == 32 and public.startswith("ssh-ed25519 ")
            digest = hashlib.sha256(base64.b64decode(public.split()[1])).digest()
            assert fingerprint == "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
            assert error is None
        command.downgrade(store._alembic_config(), "0001")  # and back down
        with store.engine.connect() as conn:
            assert "ssh_host_key" not in {c["name"] for c in inspect(conn).get_columns("instances")}
    finally:
        store.dispose()
