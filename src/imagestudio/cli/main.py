"""The `imagestudio` command."""

from __future__ import annotations

import click

from imagestudio import __version__
from imagestudio.cli.backup import backup, cleanup, export, restore
from imagestudio.cli.db import db_group
from imagestudio.cli.generate import generate
from imagestudio.cli.keys import keys_group
from imagestudio.cli.serve import serve
from imagestudio.cli.users import users_group
from imagestudio.cli.worker import worker
from imagestudio.config import load_settings
from imagestudio.kit.observability import configure_logging


@click.group()
@click.version_option(__version__, prog_name="imagestudio")
def cli() -> None:
    """imagestudio: a self-hostable image generation studio."""
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)


cli.add_command(serve)
cli.add_command(db_group)
cli.add_command(users_group)
cli.add_command(keys_group)
cli.add_command(worker)
cli.add_command(generate)
cli.add_command(backup)
cli.add_command(restore)
cli.add_command(export)
cli.add_command(cleanup)


def main() -> None:
    cli(prog_name="imagestudio")
