"""Bringing a database to the schema this version expects, before anything serves requests."""

from __future__ import annotations

from sqlalchemy import Engine

from imagestudio import migrate


class SchemaOutOfDate(RuntimeError):
    pass


def prepare_schema(engine: Engine, url: str) -> None:
    """SQLite (the embedded default) is upgraded in place; a shared PostgreSQL is never migrated
    behind its operator's back, so an old schema stops the start with the command to run."""
    current = migrate.current_revision(engine)
    head = migrate.head_revision(url)
    if current == head:
        return
    if engine.dialect.name == "sqlite":
        migrate.upgrade(url)
        return
    raise SchemaOutOfDate(
        f"the database schema is at revision {current or 'none (empty database)'} but this version needs {head}; "
        "run `imagestudio db upgrade` against this database, then start again"
    )
