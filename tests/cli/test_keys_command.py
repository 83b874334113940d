"""`imagestudio keys rotate`: users' stored provider keys move from the old secret to the new one, on
both databases; running it again changes nothing; keys neither secret opens are reported."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from imagestudio.accounts import provider_keys
from imagestudio.cli.main import cli
from imagestudio.db import Database
from imagestudio.kit.sealing import SealBroken
from imagestudio.models import UserProviderKey
from tests import factories

OLD_SECRET = "the-old-studio-secret-0123456789"
NEW_SECRET = "the-new-studio-secret-9876543210"
KEYS = {"alice": "sk-alice-key-000000001", "bob": "sk-bob-key-0000000002"}


@pytest.fixture
def run(db: Database, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGESTUDIO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("IMAGESTUDIO_SECRET_KEY", NEW_SECRET)
    url = db.engine.url.render_as_string(hide_password=False)

    def invoke(*arguments: str, env: dict[str, str] | None = None, input: str | None = None):
        return CliRunner().invoke(cli, ["keys", "rotate", *arguments, "--database-url", url], env=env, input=input)

    return invoke


def _store(db: Database, secret: str, keys: dict[str, str]) -> dict[str, uuid.UUID]:
    sealer = provider_keys.sealer_for(secret)
    owners = {}
    with db.writing() as session:
        provider_keys.set_policy(session, "openai", allow_user_keys=True, studio_key_fallback=None)
        for name, key in keys.items():
            owner = factories.make_user(session)
            provider_keys.store_key(session, sealer, owner.id, "openai", key)
            owners[name] = owner.id
    return owners


def _opened(db: Database, secret: str) -> dict[uuid.UUID, str]:
    sealer = provider_keys.sealer_for(secret)
    opened = {}
    with db.reading() as session:
        for row in session.scalars(select(UserProviderKey)):
            try:
                opened[row.user_id] = sealer.open(row.sealed, f"{row.user_id}/openai")
            except SealBroken:
                pass
    return opened


def test_rotation_reseals_every_key_under_the_new_secret(run, db: Database) -> None:
    owners = _store(db, OLD_SECRET, KEYS)

    result = run(env={"IMAGESTUDIO_OLD_SECRET_KEY": OLD_SECRET})

    assert result.exit_code == 0, result.output
    assert "re-sealed 2 key(s); 0 already under the current secret; 0 unreadable" in result.output
    assert _opened(db, NEW_SECRET) == {owners[name]: key for name, key in KEYS.items()}
    assert _opened(db, OLD_SECRET) == {}
    assert not any(key in result.output for key in KEYS.values())
    # Again (the old secret typed when asked): nothing left to do.
    again = run(input=f"{OLD_SECRET}\n")
    assert again.exit_code == 0, again.output
    assert "re-sealed 0 key(s); 2 already under the current secret" in again.output


def test_keys_neither_secret_opens_are_reported_and_left(run, db: Database) -> None:
    _store(db, OLD_SECRET, {"alice": KEYS["alice"]})
    stranger = _store(db, "some-other-secret-entirely-000000", {"bob": KEYS["bob"]})

    result = run("--old-secret", OLD_SECRET)

    assert result.exit_code != 0
    assert "re-sealed 1 key(s); 0 already under the current secret; 1 unreadable" in result.output
    assert "must store them again" in result.output
    assert stranger["bob"] not in _opened(db, NEW_SECRET)
    assert list(_opened(db, NEW_SECRET).values()) == [KEYS["alice"]]
