"""Each person's own provider keys: stored sealed, shown by their last four characters, used for their
owner's generations only (the fake records the Authorization header it received), and the policy
an administrator sets on them."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import select, text

from imagestudio.accounts import provider_keys
from imagestudio.config import Settings
from imagestudio.container import Container
from imagestudio.db import Database
from imagestudio.models import Generation, UserProviderKey
from imagestudio.notify import NotificationHub
from imagestudio.operations.backup import write_backup
from tests.api.helpers import API, Account, assert_problem, error_fields, run_queue
from tests.api.paid import FREE, PAINT, STUDIO_KEY, paid_container
from tests.fakes.openai import FakeOpenAI

ALICE_KEY = "sk-alice-own-key-a1b2"


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(api_key=STUDIO_KEY)


@pytest.fixture
def studio_key() -> str | None:
    return STUDIO_KEY


@pytest.fixture
def container(
    db: Database, hub: NotificationHub, settings: Settings, tmp_path: Path, fake: FakeOpenAI, studio_key: str | None
) -> Container:
    return paid_container(db, hub, settings, tmp_path, fake, studio_key)


def _policy(admin: Account, provider: str = "openai", **changes: bool) -> dict:
    response = admin.client.patch(f"{API}/admin/provider-keys/{provider}", json=changes)
    assert response.status_code == 200, response.text
    return response.json()


def _own(account: Account, provider: str = "openai") -> dict:
    listed = account.client.get(f"{API}/me/provider-keys")
    assert listed.status_code == 200, listed.text
    return {item["provider"]: item for item in listed.json()["items"]}[provider]


def _store(account: Account, key: str, provider: str = "openai") -> dict:
    response = account.client.put(f"{API}/me/provider-keys/{provider}", json={"api_key": key})
    assert response.status_code == 200, response.text
    return response.json()


def _listed(account: Account, provider: str = "openai") -> dict:
    return {item["name"]: item for item in account.client.get(f"{API}/providers").json()["items"]}[provider]


def _authorizations(fake: FakeOpenAI) -> list[str]:
    return [r.headers["authorization"] for r in fake.requests if r.path == "/v1/images/generations"]


def _generation(container: Container, generation_id: str) -> Generation:
    with container.db.reading() as db:
        row = db.get(Generation, uuid.UUID(generation_id))
        assert row is not None
        db.expunge(row)
        return row


def test_a_stored_key_is_sealed_and_shown_only_by_its_end(accounts, container: Container) -> None:
    admin, alice = accounts.make(admin=True), accounts.make()
    assert _own(alice) == {
        "provider": "openai",
        "allowed": False,
        "studio_key_fallback": True,
        "studio_key_configured": True,
        "key_set": False,
        "key_hint": None,
    }
    _policy(admin, allow_user_keys=True)

    answer = _store(alice, ALICE_KEY)

    assert answer["key_set"] is True and answer["key_hint"] == "…a1b2"
    assert ALICE_KEY not in str(answer) and ALICE_KEY not in alice.client.get(f"{API}/me/provider-keys").text
    with container.db.reading() as db:
        [row] = db.scalars(select(UserProviderKey)).all()
        dump = repr(db.execute(text("SELECT * FROM user_provider_keys")).all())
    assert ALICE_KEY not in dump and row.hint == "a1b2" and row.sealed.startswith("v1.")
    # The sealed value opens with the studio's secret, for this owner and provider only.
    sealer = provider_keys.studio_sealer(container.settings)
    assert sealer.open(row.sealed, f"{row.user_id}/openai") == ALICE_KEY
    with pytest.raises(ValueError):
        sealer.open(row.sealed, f"{row.user_id}/stability")
    # The admin sees how many users brought a key, never whose or what.
    [policy] = [p for p in admin.client.get(f"{API}/admin/provider-keys").json()["items"] if p["provider"] == "openai"]
    assert policy["user_keys"] == 1
    assert alice.client.delete(f"{API}/me/provider-keys/openai").status_code == 204
    assert _own(alice)["key_set"] is False
    assert_problem(alice.client.delete(f"{API}/me/provider-keys/openai"), 404, "not_found")


def test_a_users_key_pays_for_their_generations_only(accounts, container: Container, fake: FakeOpenAI) -> None:
    admin, alice, bob = accounts.make(admin=True), accounts.make(), accounts.make()
    _policy(admin, allow_user_keys=True)
    _store(alice, ALICE_KEY)
    fake.other_keys.add(ALICE_KEY)

    mine = alice.client.post(f"{API}/generations", json=PAINT)
    run_queue(container)
    theirs = bob.client.post(f"{API}/generations", json=PAINT)
    run_queue(container)

    assert mine.status_code == theirs.status_code == 201
    assert _authorizations(fake) == [f"Bearer {ALICE_KEY}", f"Bearer {STUDIO_KEY}"]
    alices = alice.client.get(f"{API}/generations/{mine.json()['id']}").json()
    bobs = bob.client.get(f"{API}/generations/{theirs.json()['id']}").json()
    assert alices["status"] == bobs["status"] == "succeeded"
    assert alices["own_key"] is True and bobs["own_key"] is False
    # Switched off, stored keys stay but are no longer used: the studio's key serves everyone again.
    _policy(admin, allow_user_keys=False)
    again = alice.client.post(f"{API}/generations", json=PAINT)
    run_queue(container)
    assert _authorizations(fake)[-1] == f"Bearer {STUDIO_KEY}"
    assert alice.client.get(f"{API}/generations/{again.json()['id']}").json()["own_key"] is False


def test_without_the_studio_key_as_fallback_only_own_keys_serve(accounts, container: Container, fake) -> None:
    admin, alice, bob = accounts.make(admin=True), accounts.make(), accounts.make()
    _policy(admin, allow_user_keys=True, studio_key_fallback=False)
    _store(alice, ALICE_KEY)
    fake.other_keys.add(ALICE_KEY)

    assert _listed(bob)["needs_own_key"] is True and _listed(alice)["needs_own_key"] is False
    refused = bob.client.post(f"{API}/generations", json=PAINT)
    assert_problem(refused, 403, "own_key_required")
    assert bob.client.get(f"{API}/generations").json()["items"] == []
    # The built-in renderer still works for Bob.
    free = {"prompt": "a kite", "provider": "builtin", "width": 64, "height": 64}
    assert bob.client.post(f"{API}/generations", json=free).status_code == 201
    assert alice.client.post(f"{API}/generations", json=PAINT).status_code == 201
    run_queue(container)
    assert _authorizations(fake) == [f"Bearer {ALICE_KEY}"]


@pytest.mark.parametrize("studio_key", [None])
def test_a_studio_without_a_key_of_its_own_runs_on_users_keys(accounts, container: Container, fake) -> None:
    admin, alice, bob = accounts.make(admin=True), accounts.make(), accounts.make()
    _policy(admin, allow_user_keys=True)
    assert _own(alice)["studio_key_configured"] is False
    assert_problem(bob.client.post(f"{API}/generations", json=PAINT), 422, "invalid_generation_request")
    _store(alice, ALICE_KEY)
    fake.other_keys.add(ALICE_KEY)

    accepted = alice.client.post(f"{API}/generations", json=PAINT)

    assert accepted.status_code == 201, accepted.text
    # The providers listing tells each person whether their own key serves them there.
    assert (_listed(alice)["configured"], _listed(alice)["own_key"]) == (False, True)
    assert _listed(bob)["own_key"] is False
    run_queue(container)
    assert alice.client.get(f"{API}/generations/{accepted.json()['id']}").json()["status"] == "succeeded"
    assert _authorizations(fake) == [f"Bearer {ALICE_KEY}"]


def test_a_key_the_service_refuses_fails_the_generation_without_showing_it(accounts, container, fake) -> None:
    admin, alice = accounts.make(admin=True), accounts.make()
    _policy(admin, allow_user_keys=True)
    # Short enough that the service echoes it whole in its 401 message.
    short_wrong_key = "sk-wr0ng9x"
    _store(alice, short_wrong_key)

    generation = alice.client.post(f"{API}/generations", json=PAINT).json()
    run_queue(container)

    done = alice.client.get(f"{API}/generations/{generation['id']}").json()
    assert done["status"] == "failed" and "Incorrect API key" in done["error"]["message"]
    assert _authorizations(fake) == [f"Bearer {short_wrong_key}"]
    assert (
        short_wrong_key not in str(done)
        and short_wrong_key not in _generation(container, generation["id"]).error_message
    )


def test_bringing_keys_is_refused_unless_allowed_and_for_hosted_providers_only(accounts, container) -> None:
    admin, alice = accounts.make(admin=True), accounts.make()
    assert_problem(
        alice.client.put(f"{API}/me/provider-keys/openai", json={"api_key": ALICE_KEY}), 403, "own_keys_not_allowed"
    )
    _policy(admin, allow_user_keys=True)
    for name in ("builtin", "nonesuch"):
        assert_problem(alice.client.put(f"{API}/me/provider-keys/{name}", json={"api_key": ALICE_KEY}), 404)
        assert_problem(admin.client.patch(f"{API}/admin/provider-keys/{name}", json={"allow_user_keys": True}), 404)
    for body in (
        {"api_key": "short"},
        {"api_key": "sk with spaces in it"},
        {"api_key": "x" * 513},
        {},
        {"key": ALICE_KEY},
    ):
        response = alice.client.put(f"{API}/me/provider-keys/openai", json=body)
        assert_problem(response, 422)
    # Credentials are managed by a person signed in, never by an API key.
    program = alice.bearer()
    assert_problem(program.put(f"{API}/me/provider-keys/openai", json={"api_key": ALICE_KEY}), 403, "login_required")
    assert_problem(program.delete(f"{API}/me/provider-keys/openai"), 403, "login_required")
    assert _own(alice)["key_set"] is False
    # Only administrators set the policy, with booleans only.
    assert_problem(alice.client.patch(f"{API}/admin/provider-keys/openai", json={"allow_user_keys": False}), 403)
    bad = admin.client.patch(f"{API}/admin/provider-keys/openai", json={"allow_user_keys": None})
    assert_problem(bad, 422) and error_fields(bad) == {"allow_user_keys"}
    assert_problem(admin.client.patch(f"{API}/admin/provider-keys/openai", json={"allow_user_keys": "yes"}), 422)
    assert _own(alice)["allowed"] is True


def test_backups_carry_keys_sealed_and_exports_carry_none(accounts, container: Container, tmp_path: Path) -> None:
    admin, alice = accounts.make(admin=True), accounts.make()
    _policy(admin, allow_user_keys=True)
    _store(alice, ALICE_KEY)
    session_id = alice.client.post(f"{API}/sessions", json={"title": "kites"}).json()["id"]
    assert alice.client.post(f"{API}/generations", json={**FREE, "session_id": session_id}).status_code == 201
    run_queue(container)

    archive = tmp_path / "backup.zip"
    write_backup(container.db.engine, container.storage, archive)
    with zipfile.ZipFile(archive) as backup:
        [row] = [json.loads(line) for line in backup.read("tables/user_provider_keys.jsonl").splitlines()]
        everything = b"".join(backup.read(name) for name in backup.namelist())
    assert row["hint"] == "a1b2" and row["sealed"].startswith("v1.")
    assert ALICE_KEY.encode() not in everything
    # Restored with the same secret, the key opens again for its owner.
    sealer = provider_keys.studio_sealer(container.settings)
    assert sealer.open(row["sealed"], f"{alice.id}/openai") == ALICE_KEY

    export = alice.client.get(f"{API}/sessions/{session_id}/export")
    assert export.status_code == 200
    with zipfile.ZipFile(io.BytesIO(export.content)) as exported:
        contents = b"".join(exported.read(name) for name in exported.namelist())
        assert not [name for name in exported.namelist() if "provider_key" in name]
    assert ALICE_KEY.encode() not in contents
