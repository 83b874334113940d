"""`imagestudio db ...`: schema migrations."""

from __future__ import annotations

import click
from alembic import command

from imagestudio import migrate
from imagestudio.config import load_settings


def _url(database_url: str | None) -> str:
    settings = load_settings(**({"database_url": database_url} if database_url else {}))
    if settings.is_sqlite:
        settings.ensure_data_dir()
    return settings.resolved_database_url


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
