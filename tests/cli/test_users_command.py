"""`imagestudio users create` against both databases: the account it makes can sign in."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from imagestudio.accounts import security
from imagestudio.cli.main import cli
from imagestudio.config import load_settings
from imagestudio.db import Database
from imagestudio.models import User
from tests.conftest import DATABASES

CHEAP_HASHING = {
    "IMAGESTUDIO_ARGON2_TIME_COST": "1",
    "IMAGESTUDIO_ARGON2_MEMORY_KIB": "8",
    "IMAGESTUDIO_ARGON2_PARALLELISM": "1",
}


@pytest.fixture
def run(db: Database, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGESTUDIO_DATA_DIR", str(tmp_path / "data"))
    for name, value in CHEAP_HASHING.items():
        monkeypatch.setenv(name, value)
    url = db.engine.url.render_as_string(hide_password=False)

    def invoke(*arguments: str, input: str | None = None):
        return CliRunner().invoke(cli, ["users", "create", *arguments, "--database-url", url], input=input)

    return invoke


def _users(db: Database) -> list[User]:
    with db.reading() as session:
        return list(session.scalars(select(User)))


def test_creates_an_admin_whose_password_verifies(run, db: Database) -> None:
    result = run("--email", "Root@Example.TEST", "--password", "a long password", "--admin")
    assert result.exit_code == 0, result.output
    assert "created administrator root@example.test" in result.output
    [user] = _users(db)
    assert user.email == "root@example.test" and user.is_admin and user.is_active
    settings = load_settings(argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1)
    assert security.verify_password(settings, user.password_hash, "a long password")[0]
    assert "a long password" not in user.password_hash


def test_prompts_for_the_password_when_omitted(run, db: Database) -> None:
    result = run("--email", "someone@example.test", input="prompted secret\nprompted secret\n")
    assert result.exit_code == 0, result.output
    assert "prompted secret" not in result.output
    [user] = _users(db)
    assert not user.is_admin
    settings = load_settings(argon2_time_cost=1, argon2_memory_kib=8, argon2_parallelism=1)
    assert security.verify_password(settings, user.password_hash, "prompted secret")[0]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--email", "not-an-email", "--password", "long enough"], "email: Email is not an email address."),
        (["--email", "short@example.test", "--password", "short"], "password: Password must be at least 8"),
        (["--email", "huge@example.test", "--password", "x" * 1025], "password: Password must be at most 1024"),
    ],
)
def test_refuses_bad_input_in_one_line(run, db: Database, arguments: list[str], message: str) -> None:
    result = run(*arguments)
    assert result.exit_code == 1
    assert message in result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert "Traceback" not in result.output
    assert _users(db) == []


def test_refuses_a_taken_email(run, db: Database) -> None:
    assert run("--email", "twice@example.test", "--password", "long enough").exit_code == 0
    result = run("--email", "TWICE@example.test", "--password", "long enough")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: email: Taken."
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 1


@pytest.mark.parametrize("kind", DATABASES)
def test_postgresql_without_schema_is_refused_sqlite_is_migrated(kind: str, fresh_database, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGESTUDIO_DATA_DIR", str(tmp_path / "data"))
    for name, value in CHEAP_HASHING.items():
        monkeypatch.setenv(name, value)
    url = fresh_database(kind)
    result = CliRunner().invoke(
        cli, ["users", "create", "--email", "a@example.test", "--password", "long enough", "--database-url", url]
    )
    if kind == "sqlite":
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1
        assert "imagestudio db upgrade" in result.output
