"""The migration tree builds the schema the models describe, and walks down and up again, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text

from imagestudio import migrate
from imagestudio.db import make_database
from imagestudio.generations.events import append_event
from imagestudio.models import EventType, GenerationEvent, metadata
from imagestudio.schema import SchemaOutOfDate, prepare_schema
from tests import factories
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
    "batch_images",
    "message_attachments",
    "assets",
    "generation_events",
    "event_counters",
    "providers",
    "captions",
    "usage_counters",
    "rate_counters",
    "audit_events",
    "user_provider_keys",
    "provider_key_policies",
    "studio_settings",
    "ui_generations",
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
def test_event_positions_continue_the_ids_streams_already_sent(kind: str, fresh_database) -> None:
    url = fresh_database(kind)
    migrate.upgrade(url)
    db = make_database(url)
    try:
        with db.writing() as session:
            owners = [factories.make_user(session) for _ in range(2)]
            generations = [factories.make_generation(session, owners[n], None) for n in (0, 1, 0)]
            ids = [(generation.id, generation.owner_id) for generation in generations]
        for generation_id, _ in ids:
            with db.writing() as session:
                append_event(session, generation_id, EventType.queued)
        # Back to before per-user positions (the events keep only their global ids), and up again.
        migrate.downgrade(url, "0007")
        migrate.upgrade(url)
        with db.reading() as session:
            rows = session.execute(text("SELECT id, position FROM generation_events ORDER BY id")).all()
        # A browser holding Last-Event-ID from before the upgrade resumes where it was.
        assert [position for _, position in rows] == [event_id for event_id, _ in rows]
        with db.writing() as session:
            append_event(session, ids[0][0], EventType.progress, {"step": 1})
        with db.reading() as session:
            [latest] = session.scalars(
                select(GenerationEvent.position).where(GenerationEvent.type == EventType.progress.value)
            )
        assert latest == rows[2].id + 1  # the owner's counter continues from their highest
    finally:
        db.dispose()


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


def test_rebuilding_a_table_on_sqlite_keeps_the_rows_that_reference_it(fresh_database) -> None:
    """Batch migrations copy and drop tables on SQLite; the drop must not cascade into other tables."""
    url = fresh_database("sqlite")
    migrate.upgrade(url)
    db = make_database(url)
    try:
        with db.writing() as session:
            owner = factories.make_user(session)
            generation_id = factories.make_generation(session, owner, None).id
        with db.writing() as session:
            append_event(session, generation_id, EventType.queued)
        # 0009 rebuilds the generations table (its type CHECK changes) both ways.
        migrate.downgrade(url, "0008")
        migrate.upgrade(url)
        with db.reading() as session:
            assert session.scalar(select(func.count()).select_from(GenerationEvent)) == 1
            assert session.execute(text("PRAGMA foreign_key_check")).all() == []
    finally:
        db.dispose()
