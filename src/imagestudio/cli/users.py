"""`imagestudio users ...`: accounts from the command line (the first admin, or any user)."""

from __future__ import annotations

import click

from imagestudio.cli.db import database_option, prepared_database


@click.group("users")
def users_group() -> None:
    """Manage user accounts."""


@users_group.command("create")
@click.option("--email", required=True, help="Email address; also the sign-in name.")
@click.option("--password", default=None, help="Password (8 to 1024 characters); prompted for when omitted.")
@click.option("--admin", is_flag=True, default=False, help="Make the user an administrator.")
@click.option("--display-name", default="", help="Name shown in the studio.")
@database_option
def create(email: str, password: str | None, admin: bool, display_name: str, database_url: str | None) -> None:
    """Create a user account."""
    from imagestudio.accounts import service
    from imagestudio.kit.errors import ApiError

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        with prepared_database(database_url) as (settings, database), database.writing() as db:
            user = service.create_user(
                db, settings, email=email, password=password, display_name=display_name, is_admin=admin
            )
            user_id, user_email = user.id, user.email
    except ApiError as error:
        details = "; ".join(f"{item.field}: {item.message}" for item in error.fields)
        raise click.ClickException(details or error.detail) from None
    role = "administrator" if admin else "user"
    click.echo(f"created {role} {user_email} ({user_id})")
