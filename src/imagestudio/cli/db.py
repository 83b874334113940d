"""`imagestudio db ...`: schema migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from alembic import command

from imagestudio import migrate
from imagestudio.config import Settings, load_settings
from imagestudio.db import Database, make_database
from imagestudio.schema import SchemaOutOfDate, prepare_schema


def _settings(database_url: str | None) -> Settings:
    settings = load_settings(**({"database_url": database_url} if database_url else {}))
    if settings.is_sqlite:
        settings.ensure_data_dir()
    return settings


def _url(database_url: str | None) -> str:
    return _settings(database_url).resolved_database_url


@contextmanager
def prepared_database(database_url: str | None) -> Iterator[tuple[Settings, Database]]:
    """The configured database (or the one named), its schema brought up to date, for one command.
    A schema newer than this code is a ClickException; the connections are closed at the end."""
    settings = _settings(database_url)
    url = settings.resolved_database_url
    database = make_database(url, pool_size=1)
    try:
        prepare_schema(database.engine, url)
        yield settings, database
    except SchemaOutOfDate as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()


database_option = click.option(
    "--database-url", envvar="IMAGESTUDIO_DATABASE_URL", help="Defaults to the configured database."
)


@click.group("db")
def db_group() -> None:
    """Inspect and migrate the database schema."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@database_option
def upgrade(revision: str, database_url: str | None) -> None:
    """Upgrade the schema to REVISION (default: the newest)."""
    migrate.upgrade(_url(database_url), revision)
    click.echo(f"database upgraded to {revision}")


@db_group.command("downgrade")
@click.argument("revision")
@database_option
def downgrade(revision: str, database_url: str | None) -> None:
    """Downgrade the schema to REVISION ('base' removes every table)."""
    migrate.downgrade(_url(database_url), revision)
    click.echo(f"database downgraded to {revision}")


@db_group.command("current")
@database_option
def current(database_url: str | None) -> None:
    """Show the schema revision of the database."""
    command.current(migrate.alembic_config(_url(database_url)), verbose=False)


@db_group.command("history")
@database_option
def history(database_url: str | None) -> None:
    """List every migration."""
    command.history(migrate.alembic_config(_url(database_url)), verbose=False)
