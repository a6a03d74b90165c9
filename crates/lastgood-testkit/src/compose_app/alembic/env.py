"""Alembic's environment for the shop: the database is DATABASE_URL."""

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)

# The migrations are written by hand (no autogenerate), so there is no metadata.
target_metadata = None


def database_url():
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        if context.is_offline_mode():
            return "postgresql+psycopg2://"  # the dialect is all --sql needs
        raise SystemExit("DATABASE_URL is not set")
    # libpq's postgres:// or postgresql://, for SQLAlchemy with psycopg2 (SQLAlchemy
    # 2.1's default PostgreSQL driver is psycopg 3, which this image does not have).
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgres", "postgresql"):
        url = "postgresql+psycopg2://" + rest
    return url


def run_migrations_offline():
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
