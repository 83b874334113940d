"""`imagestudio keys ...`: users' own provider keys, sealed under the studio's secret."""

from __future__ import annotations

import click

from imagestudio.config import load_settings


@click.group("keys")
def keys_group() -> None:
    """Manage the provider keys users stored."""


@keys_group.command("rotate")
@click.option(
    "--old-secret",
    envvar="IMAGESTUDIO_OLD_SECRET_KEY",
    default=None,
    help="The previous IMAGESTUDIO_SECRET_KEY (better given in IMAGESTUDIO_OLD_SECRET_KEY, or typed when asked).",
)
@click.option("--database-url", envvar="IMAGESTUDIO_DATABASE_URL", help="Defaults to the configured database.")
def rotate(old_secret: str | None, database_url: str | None) -> None:
    """Re-seal every stored user key from the old secret to the current IMAGESTUDIO_SECRET_KEY.

    Run it after changing the secret, with the old one. Keys already sealed under the current secret
    are left alone, so it can be run again; a key that opens with neither is reported, and its owner
    must store it again."""
    from imagestudio.accounts import provider_keys
    from imagestudio.db import make_database
    from imagestudio.schema import SchemaOutOfDate, prepare_schema

    if not old_secret:
        old_secret = click.prompt("Old secret key", hide_input=True)
    settings = load_settings(**({"database_url": database_url} if database_url else {}))
    if settings.is_sqlite:
        settings.ensure_data_dir()
    url = settings.resolved_database_url
    database = make_database(url, pool_size=1)
    try:
        prepare_schema(database.engine, url)
        old = provider_keys.sealer_for(old_secret.strip())
        new = provider_keys.studio_sealer(settings)
        with database.writing() as db:
            outcome = provider_keys.rotate(db, old, new)
    except SchemaOutOfDate as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()
    click.echo(
        f"re-sealed {outcome.rotated} key(s); {outcome.already_current} already under the current secret; "
        f"{outcome.unreadable} unreadable"
    )
    if outcome.unreadable:
        raise click.ClickException(
            f"{outcome.unreadable} key(s) open with neither secret; their owners must store them again"
        )
