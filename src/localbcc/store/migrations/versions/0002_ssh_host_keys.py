"""SSH endpoints: a host key per instance, and the endpoint's error.

Existing instances get their host key here, so every instance has one.
Self-contained on purpose (no localbcc imports): a migration must keep doing
what it did when it was written.

Revision ID: 0002
Revises: 0001
"""
import base64
import hashlib

import sqlalchemy as sa
from alembic import op
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = (("ssh_host_key", 64), ("ssh_host_public_key", 128),
            ("ssh_host_fingerprint", 64), ("ssh_error", 256))


def _host_key() -> dict:
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(ser.Encoding.Raw, ser.PrivateFormat.Raw, ser.NoEncryption())
    line = key.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()
    digest = hashlib.sha256(base64.b64decode(line.split()[1])).digest()
    return {"ssh_host_key": seed.hex(), "ssh_host_public_key": line,
            "ssh_host_fingerprint": "SHA256:" + base64.b64encode(digest).decode().rstrip("=")}


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        for name, length in _COLUMNS:
            batch.add_column(sa.Column(name, sa.String(length), nullable=True))
    instances = sa.table("instances", sa.column("id", sa.String),
                         *(sa.column(name, sa.String) for name, _ in _COLUMNS))
    conn = op.get_bind()
    ids = [r[0] for r in conn.execute(sa.select(instances.c.id))]
    for iid in ids:
        conn.execute(sa.update(instances).where(instances.c.id == iid).values(**_host_key()))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
