"""`imagestudio db upgrade | downgrade | current | history` against both databases."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from imagestudio import migrate
from imagestudio.cli.main import cli
from tests.conftest import DATABASES


@pytest.mark.parametrize("kind", DATABASES)
def test_db_commands_walk_the_schema(kind: str, fresh_database, tmp_path, monkeypatch) -> None:
    url = fresh_database(kind)
    monkeypatch.setenv("IMAGESTUDIO_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    head = migrate.head_revision()

    result = runner.invoke(cli, ["db", "current", "--database-url", url])
    assert result.exit_code == 0, result.output
    assert head not in result.output

    result = runner.invoke(cli, ["db", "upgrade", "--database-url", url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["db", "current", "--database-url", url])
    assert head in result.output

    result = runner.invoke(cli, ["db", "history", "--database-url", url])
    assert result.exit_code == 0 and "initial schema" in result.output

    result = runner.invoke(cli, ["db", "downgrade", "base", "--database-url", url])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["db", "current", "--database-url", url])
    assert head not in result.output


def test_downgrade_needs_a_revision() -> None:
    result = CliRunner().invoke(cli, ["db", "downgrade"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output
