"""The migration tree builds the schema the models describe, and walks down and up again, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from imagestudio import migrate
from imagestudio.models import metadata
from imagestudio.schema import SchemaOutOfDate, prepare_schema
from tests.conftest import DATABASES

EXPECTED_TABLES = {
    "users",
    "auth_sessions",
    "api_keys",
    "user_settings",
    "projects",
    "account_tokens",
    "mail_outbox",
    "sessions",
    "messages",
    "generations",
    "generation_inputs",
    "message_attachments",
    "assets",
    "generation_events",
    "providers",
    "captions",
    "usage_counters",
    "rate_counters",
    "audit_events",
    "alembic_version",
}


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", DATABASES)
def test_upgrade_downgrade_upgrade(kind: str, fresh_database) -> None:
    url = fresh_database(kind)
    migrate.upgrade(url)
    assert _tables(url) == EXPECTED_TABLES
    migrate.downgrade(url, "base")
    assert _tables(url) <= {"alembic_version"}
    migrate.upgrade(url)
    assert _tables(url) == EXPECTED_TABLES


@pytest.mark.parametrize("kind", DATABASES)
def test_models_and_migrations_agree(kind: str, fresh_database) -> None:
    url = fresh_database(kind)
    migrate.upgrade(url)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_the_tree_has_one_head() -> None:
    assert migrate.head_revision()


def test_sqlite_is_upgraded_on_start(fresh_database) -> None:
    url = fresh_database("sqlite")
    engine = create_engine(url)
    try:
        prepare_schema(engine, url)
        assert migrate.is_up_to_date(engine)
    finally:
        engine.dispose()


def test_postgresql_on_an_old_schema_refuses_to_start(fresh_database) -> None:
    url = fresh_database("postgresql")
    engine = create_engine(url)
    try:
        with pytest.raises(SchemaOutOfDate, match="imagestudio db upgrade"):
            prepare_schema(engine, url)
        assert _tables(url) == set()
        migrate.upgrade(url)
        prepare_schema(engine, url)
    finally:
        engine.dispose()
