"""`imagestudio users ...`: accounts from the command line (the first admin, or any user)."""

from __future__ import annotations

import click

from imagestudio.config import load_settings


@click.group("users")
def users_group() -> None:
    """Manage user accounts."""


@users_group.command("create")
@click.option("--email", required=True, help="Email address; also the sign-in name.")
@click.option("--password", default=None, help="Password (8 to 1024 characters); prompted for when omitted.")
@click.option("--admin", is_flag=True, default=False, help="Make the user an administrator.")
@click.option("--display-name", default="", help="Name shown in the studio.")
@click.option("--database-url", envvar="IMAGESTUDIO_DATABASE_URL", help="Defaults to the configured database.")
def create(email: str, password: str | None, admin: bool, display_name: str, database_url: str | None) -> None:
    """Create a user account."""
    from imagestudio.accounts import service
    from imagestudio.db import make_database
    from imagestudio.kit.errors import ApiError
    from imagestudio.schema import SchemaOutOfDate, prepare_schema

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = load_settings(**({"database_url": database_url} if database_url else {}))
    if settings.is_sqlite:
        settings.ensure_data_dir()
    url = settings.resolved_database_url
    database = make_database(url, pool_size=1)
    try:
        prepare_schema(database.engine, url)
        with database.writing() as db:
            user = service.create_user(
                db, settings, email=email, password=password, display_name=display_name, is_admin=admin
            )
            user_id, user_email = user.id, user.email
    except SchemaOutOfDate as error:
        raise click.ClickException(str(error)) from None
    except ApiError as error:
        details = "; ".join(f"{item.field}: {item.message}" for item in error.fields)
        raise click.ClickException(details or error.detail) from None
    finally:
        database.dispose()
    role = "administrator" if admin else "user"
    click.echo(f"created {role} {user_email} ({user_id})")
