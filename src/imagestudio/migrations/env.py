"""Alembic environment: one migration tree for SQLite and PostgreSQL (batch mode on SQLite)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from imagestudio.db import SessionLimits, make_engine
from imagestudio.models import metadata

config = context.config


def _run(connection: Connection) -> None:
    if connection.dialect.name == "sqlite" and not connection.in_transaction():
        # Batch mode rebuilds a table by copying it and dropping the old one; with foreign keys on,
        # that drop would cascade into every table that references it (losing events, inputs,
        # outputs). SQLite only switches this outside a transaction, hence the driver connection.
        connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # Migrations run outside the app's BEGIN IMMEDIATE hook; each revision is one transaction.
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    # A migration may rightly run one long statement (an index on a big table): no statement timeout.
    limits = SessionLimits.for_lease().without_statement_timeout()
    engine = make_engine(config.get_main_option("sqlalchemy.url"), limits=limits)
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run against a database")
run_migrations_online()
