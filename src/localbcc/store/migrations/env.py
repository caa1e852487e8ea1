"""Alembic environment: runs migrations on the engine localbcc hands over
(``config.attributes["engine"]``), or on ``sqlalchemy.url`` when run by hand."""
from alembic import context
from sqlalchemy import create_engine

from localbcc.store.schema import metadata

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url") or "")

with engine.begin() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    context.run_migrations()
