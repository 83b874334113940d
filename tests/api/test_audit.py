"""The audit trail: what is recorded (with who, when, from where), what is not (rolled-back changes),
who may read it, and its filters and paging, on SQLite and PostgreSQL."""

from __future__ import annotations

from click.testing import CliRunner

from imagestudio.cli.main import cli
from tests.api.helpers import API, PASSWORD, assert_problem, browser_client


def _trail(admin, **filters) -> list[dict]:
    response = admin.client.get(f"{API}/admin/audit", params={"limit": 200, **filters})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_sign_ins_keys_and_account_changes_are_recorded(app, accounts) -> None:
    admin = accounts.make(admin=True)
    alice = accounts.make()
    failed = browser_client(app).post(f"{API}/auth/login", json={"email": alice.email, "password": "wrong password!"})
    assert failed.status_code == 401
    key_id = alice.client.post(f"{API}/api-keys", json={"name": "ci", "scopes": ["read"]}).json()["id"]
    assert alice.client.delete(f"{API}/api-keys/{key_id}").status_code == 204
    assert admin.client.patch(f"{API}/admin/users/{alice.id}", json={"daily_image_quota": 7}).status_code == 200
    made = admin.client.post(f"{API}/admin/users", json={"email": "new@example.test", "password": PASSWORD})
    assert made.status_code == 201

    events = _trail(admin)
    actions = [event["action"] for event in events]
    for action in (
        "auth.login",
        "auth.login_failed",
        "api_key.created",
        "api_key.revoked",
        "user.updated",
        "user.created",
    ):
        assert action in actions, action
    by_action = {event["action"]: event for event in events}
    failure = by_action["auth.login_failed"]
    assert (failure["actor_email"], failure["target_id"], failure["address"]) == (alice.email, alice.id, "testclient")
    created = by_action["api_key.created"]
    assert (
        created["actor_id"] == alice.id and created["target_id"] == key_id and created["details"]["scopes"] == ["read"]
    )
    quota = by_action["user.updated"]
    assert quota["actor_id"] == admin.id and quota["target_id"] == alice.id
    assert quota["details"]["changes"] == {"daily_image_quota": 7}
    # Newest first; no secret ever recorded.
    assert events == sorted(events, key=lambda e: (e["created_at"], e["id"]), reverse=True)
    assert "wrong password!" not in str(events) and PASSWORD not in str(events)


def test_a_refused_change_leaves_no_trace(accounts) -> None:
    admin = accounts.make(admin=True)
    # The last admin cannot lose the role: 409, and nothing is recorded.
    assert_problem(admin.client.patch(f"{API}/admin/users/{admin.id}", json={"is_admin": False}), 409)
    assert _trail(admin, action="user") == []


def test_filters_and_paging(app, accounts) -> None:
    admin = accounts.make(admin=True)
    for _ in range(3):
        browser_client(app).post(f"{API}/auth/login", json={"email": admin.email, "password": "not it at all"})
    failures = _trail(admin, action="auth.login_failed")
    assert len(failures) == 3
    family = _trail(admin, action="auth")
    assert {event["action"] for event in family} == {"auth.login", "auth.login_failed"}
    assert _trail(admin, actor_id=admin.id) and all(e["actor_id"] == admin.id for e in _trail(admin, actor_id=admin.id))
    first = admin.client.get(f"{API}/admin/audit", params={"limit": 2}).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = admin.client.get(f"{API}/admin/audit", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert not {e["id"] for e in first["items"]} & {e["id"] for e in second["items"]}
    later = admin.client.get(f"{API}/admin/audit", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert later["items"] == []


def test_bad_filters_are_refused(accounts) -> None:
    admin = accounts.make(admin=True)
    for params in (
        {"action": "DROP TABLE"},
        {"action": "a" * 65},
        {"since": "yesterday"},
        {"actor_id": "me"},
        {"cursor": "###"},
    ):
        response = admin.client.get(f"{API}/admin/audit", params=params)
        assert response.status_code == 422, (params, response.text)


def test_only_administrators_read_the_trail(accounts) -> None:
    alice = accounts.make()
    assert_problem(alice.client.get(f"{API}/admin/audit"), 403, "admin_required")


def test_backups_are_recorded(app, accounts, container, tmp_path, monkeypatch) -> None:
    admin = accounts.make(admin=True)
    monkeypatch.setenv("IMAGESTUDIO_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("IMAGESTUDIO_DATABASE_URL", container.settings.resolved_database_url)
    monkeypatch.setenv("IMAGESTUDIO_STORAGE_URL", f"file://{tmp_path / 'storage'}")
    result = CliRunner().invoke(cli, ["backup", str(tmp_path / "b.zip")])
    assert result.exit_code == 0, result.output
    (event,) = _trail(admin, action="backup")
    assert event["action"] == "backup.created" and event["actor_id"] is None
    assert event["details"]["path"].endswith("b.zip")
