"""The database schema, as SQLAlchemy Core tables. Alembic migrations under
``migrations/`` create exactly this; a test checks that they agree.

Design notes (see docs/design.md):
- ``seq`` is an ever-increasing surrogate key that gives creation order, so
  list paging is ``WHERE seq >= :marker_seq ORDER BY seq``.
- ``tombstones`` remember the ``seq`` of deleted key pairs and released
  instances, so a marker naming a deleted item still pages correctly.
- ``instanceCount`` is never stored: it is counted from ``instances``, so it
  can never disagree with the bindings.
- A foreign key from ``instances.keypair_id`` to ``keypairs.id`` makes binding
  to a deleted pair impossible even under races.
"""
from __future__ import annotations

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("access_key", String(128), primary_key=True),
    Column("secret_key", String(128), nullable=False),
    Column("created_at", Float, nullable=False),
)

keypairs = Table(
    "keypairs",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(16), nullable=False, unique=True),
    Column("account", String(128), nullable=False),
    Column("name", String(65), nullable=False),
    Column("description", String(140), nullable=False, default=""),
    Column("public_key", Text, nullable=False),
    Column("fingerprint", String(47), nullable=False),
    Column("blob_sha256", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    UniqueConstraint("account", "blob_sha256", name="uq_keypairs_account_blob"),
    Index("ix_keypairs_account_seq", "account", "seq"),
    sqlite_autoincrement=True,
)

instances = Table(
    "instances",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(16), nullable=False, unique=True),
    Column("account", String(128), nullable=False),
    Column("name", String(128), nullable=False),
    Column("hostname", String(128), nullable=False),
    Column("description", String(256), nullable=False, default=""),
    Column("image_id", String(16), nullable=False),
    Column("instance_type", String(64), nullable=False),
    Column("cpu_count", Integer, nullable=False),
    Column("memory_gb", Integer, nullable=False),
    Column("zone_name", String(64), nullable=False),
    Column("payment_timing", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    # Lifecycle: `state` is where the instance settles; while now < transition_until
    # it shows the in-between status of `transition` (create/start/stop/restart).
    Column("state", String(16), nullable=False),
    Column("transition", String(16), nullable=True),
    Column("transition_until", Float, nullable=False, default=0.0),
    # Binding: the bound pair, and when its key is (or was) in force; NULL means
    # it waits for the next start.
    Column("keypair_id", String(16), ForeignKey("keypairs.id", ondelete="RESTRICT"), nullable=True),
    Column("key_in_force_at", Float, nullable=True),
    # Password login works until the first key pair comes in force.
    Column("admin_pass_hash", String(256), nullable=True),
    Column("first_key_at", Float, nullable=True),
    # SSH (migration 0002): the instance's ed25519 host key (seed hex, public
    # line, SHA256 fingerprint), generated once at creation; and why the process
    # serving SSH could not open its endpoint (NULL: it could, or nobody tried).
    Column("ssh_host_key", String(64), nullable=True),
    Column("ssh_host_public_key", String(128), nullable=True),
    Column("ssh_host_fingerprint", String(64), nullable=True),
    Column("ssh_error", String(256), nullable=True),
    Index("ix_instances_account_seq", "account", "seq"),
    Index("ix_instances_keypair", "keypair_id"),
    sqlite_autoincrement=True,
)

tombstones = Table(
    "tombstones",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("id", String(16), primary_key=True),
    Column("account", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
)

idempotency = Table(
    "idempotency",
    metadata,
    Column("account", String(128), primary_key=True),
    Column("operation", String(32), primary_key=True),
    Column("token", String(64), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
