"""`imagestudio backup PATH` and `imagestudio restore PATH`."""

from __future__ import annotations

from pathlib import Path

import click

from imagestudio.config import load_settings
from imagestudio.db import make_database
from imagestudio.operations.backup import BackupError, restore_backup, write_backup
from imagestudio.storage import storage_from_url


def _settings():
    settings = load_settings()
    if settings.is_sqlite:
        settings.ensure_data_dir()
    return settings


@click.command("backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def backup(path: Path) -> None:
    """Write a consistent archive of the database and every stored object to PATH (a .zip).

    Safe while the studio runs: the database is read in one snapshot."""
    settings = _settings()
    database = make_database(settings.resolved_database_url)
    try:
        manifest = write_backup(database.engine, storage_from_url(settings.resolved_storage_url), path, click.echo)
    finally:
        database.dispose()
    if manifest.missing_objects:
        click.echo(f"warning: {len(manifest.missing_objects)} objects were missing from storage", err=True)
    click.echo(f"backup written to {path}")


@click.command("restore")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Remove everything in the target database first.")
def restore(path: Path, replace: bool) -> None:
    """Restore the archive at PATH into the configured (empty) database and storage.

    Every checksum is verified first. The archive may come from SQLite or PostgreSQL."""
    settings = _settings()
    database = make_database(settings.resolved_database_url)
    try:
        restore_backup(
            path, database.engine, storage_from_url(settings.resolved_storage_url), replace=replace, progress=click.echo
        )
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()
    click.echo(f"restored from {path}")
