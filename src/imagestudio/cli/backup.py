"""Operating commands: `backup PATH`, `restore PATH`, `export --user EMAIL --out FILE`, `cleanup [--dry-run]`."""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import select

from imagestudio.accounts import audit
from imagestudio.accounts.service import normalize_email
from imagestudio.config import load_settings
from imagestudio.db import make_database
from imagestudio.models import User
from imagestudio.operations.backup import BackupError, restore_backup, write_backup
from imagestudio.operations.cleanup import run_cleanup
from imagestudio.operations.export import Scope, write_export
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
        with database.writing() as db:
            details = {"path": str(path.resolve()), "tables": len(manifest.tables), "objects": len(manifest.objects)}
            audit.record(db, "backup.created", details=details)
            db.commit()
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
        manifest = restore_backup(
            path, database.engine, storage_from_url(settings.resolved_storage_url), replace=replace, progress=click.echo
        )
        with database.writing() as db:
            details = {"path": str(path.resolve()), "backup_created_at": manifest.created_at, "from": manifest.database}
            audit.record(db, "backup.restored", details=details)
            db.commit()
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    finally:
        database.dispose()
    click.echo(f"restored from {path}")


@click.command("export")
@click.option("--user", "email", required=True, help="The account whose work to export.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The zip to write.")
def export(email: str, out: Path) -> None:
    """Write everything one user made (images and a JSON document per generation) to a zip."""
    settings = _settings()
    database = make_database(settings.resolved_database_url)
    try:
        with database.reading() as db:
            user = db.scalar(select(User).where(User.email == normalize_email(email)))
            if user is None:
                raise click.ClickException(f"no account with the email {email}")
            with out.open("wb") as destination:
                index = write_export(
                    db, storage_from_url(settings.resolved_storage_url), Scope(owner_id=user.id), destination
                )
    finally:
        database.dispose()
    click.echo(f"{index['generations']} generations and {index['images']} images written to {out}")


@click.command("cleanup")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--verbose", is_flag=True, help="List every upload, object and output concerned.")
def cleanup(dry_run: bool, verbose: bool) -> None:
    """Run the cleanup passes now: expired logins, unused uploads, objects no row names, and outputs
    past IMAGESTUDIO_RETENTION_DAYS."""
    settings = _settings()
    database = make_database(settings.resolved_database_url)
    try:
        report = run_cleanup(database, storage_from_url(settings.resolved_storage_url), settings, dry_run=dry_run)
    finally:
        database.dispose()
    for line in report.lines():
        click.echo(line)
    if verbose:
        for label, items in (
            ("upload", report.stale_uploads),
            ("object", report.orphan_objects),
            ("output", report.expired_outputs),
        ):
            for item in items:
                click.echo(f"  {label} {item}")
