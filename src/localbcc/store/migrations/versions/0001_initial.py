"""Initial schema: accounts, key pairs, instances, tombstones, idempotency.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("access_key", sa.String(128), primary_key=True),
        sa.Column("secret_key", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "keypairs",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(16), nullable=False, unique=True),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("name", sa.String(65), nullable=False),
        sa.Column("description", sa.String(140), nullable=False),
        sa.Column("public_key", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(47), nullable=False),
        sa.Column("blob_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("account", "blob_sha256", name="uq_keypairs_account_blob"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_keypairs_account_seq", "keypairs", ["account", "seq"])
    op.create_table(
        "instances",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(16), nullable=False, unique=True),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("hostname", sa.String(128), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("image_id", sa.String(16), nullable=False),
        sa.Column("instance_type", sa.String(64), nullable=False),
        sa.Column("cpu_count", sa.Integer, nullable=False),
        sa.Column("memory_gb", sa.Integer, nullable=False),
        sa.Column("zone_name", sa.String(64), nullable=False),
        sa.Column("payment_timing", sa.String(32), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("transition", sa.String(16), nullable=True),
        sa.Column("transition_until", sa.Float, nullable=False),
        sa.Column("keypair_id", sa.String(16),
                  sa.ForeignKey("keypairs.id", ondelete="RESTRICT"), nullable=True),
        sa.Column("key_in_force_at", sa.Float, nullable=True),
        sa.Column("admin_pass_hash", sa.String(256), nullable=True),
        sa.Column("first_key_at", sa.Float, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_instances_account_seq", "instances", ["account", "seq"])
    op.create_index("ix_instances_keypair", "instances", ["keypair_id"])
    op.create_table(
        "tombstones",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
    )
    op.create_table(
        "idempotency",
        sa.Column("account", sa.String(128), primary_key=True),
        sa.Column("operation", sa.String(32), primary_key=True),
        sa.Column("token", sa.String(64), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("idempotency", "tombstones", "instances", "keypairs", "accounts"):
        op.drop_table(table)
