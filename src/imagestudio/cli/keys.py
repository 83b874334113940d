"""`imagestudio keys ...`: users' own provider keys, sealed under the studio's secret."""

from __future__ import annotations

import click

from imagestudio.cli.db import database_option, prepared_database


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
@database_option
def rotate(old_secret: str | None, database_url: str | None) -> None:
    """Re-seal every stored user key from the old secret to the current IMAGESTUDIO_SECRET_KEY.

    Run it after changing the secret, with the old one. Keys already sealed under the current secret
    are left alone, so it can be run again; a key that opens with neither is reported, and its owner
    must store it again."""
    from imagestudio.accounts import provider_keys

    if not old_secret:
        old_secret = click.prompt("Old secret key", hide_input=True)
    with prepared_database(database_url) as (settings, database):
        old = provider_keys.sealer_for(old_secret.strip())
        new = provider_keys.studio_sealer(settings)
        with database.writing() as db:
            outcome = provider_keys.rotate(db, old, new)
    click.echo(
        f"re-sealed {outcome.rotated} key(s); {outcome.already_current} already under the current secret; "
        f"{outcome.unreadable} unreadable"
    )
    if outcome.unreadable:
        raise click.ClickException(
            f"{outcome.unreadable} key(s) open with neither secret; their owners must store them again"
        )
