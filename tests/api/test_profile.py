"""The signed-in user, their settings and projects; user administration."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from imagestudio.models import ChatSession, User
from tests import factories
from tests.api.helpers import API, assert_problem, error_fields

PROJECTS = f"{API}/projects"


# --- me ----------------------------------------------------------------------------------------


def test_me_shows_the_account_and_takes_a_display_name(accounts) -> None:
    alice = accounts.make()
    me = alice.client.get(f"{API}/me").json()
    assert me["email"] == alice.email and me["is_admin"] is False and "password_hash" not in me
    response = alice.client.patch(f"{API}/me", json={"display_name": "  Alice Liddell  "})
    assert response.status_code == 200 and response.json()["display_name"] == "Alice Liddell"
    assert alice.client.get(f"{API}/me").json()["display_name"] == "Alice Liddell"


@pytest.mark.parametrize(
    "body", [{"display_name": "x" * 201}, {"display_name": None}, {"email": "new@example.test"}, {"is_admin": True}]
)
def test_me_refuses_what_it_does_not_take(accounts, body: dict) -> None:
    alice = accounts.make()
    assert_problem(alice.client.patch(f"{API}/me", json=body), 422, "validation_failed")
    me = alice.client.get(f"{API}/me").json()
    assert me["display_name"] == "Test" and me["email"] == alice.email and me["is_admin"] is False


# --- settings ----------------------------------------------------------------------------------


def test_settings_start_at_the_defaults_and_keep_changes(accounts) -> None:
    alice = accounts.make()
    assert alice.client.get(f"{API}/me/settings").json() == {
        "theme": "system",
        "language": "en",
        "timezone": "UTC",
        "default_provider": None,
        "default_model": None,
        "default_params": {},
        "enhance_prompt": False,
        "notifications": {},
    }
    changes = {
        "theme": "dark",
        "language": "pt-BR",
        "timezone": "America/Sao_Paulo",
        "default_provider": "builtin",
        "default_model": "builtin-procedural",
        "default_params": {"steps": 30, "guidance": 7.5, "seed": 42},
        "enhance_prompt": True,
        "notifications": {"generation_finished": True},
    }
    response = alice.client.patch(f"{API}/me/settings", json=changes)
    assert response.status_code == 200, response.text
    assert alice.client.get(f"{API}/me/settings").json() == changes
    # A partial change keeps the rest; null clears the optional defaults.
    alice.client.patch(f"{API}/me/settings", json={"theme": "light", "default_model": None})
    after = alice.client.get(f"{API}/me/settings").json()
    assert after["theme"] == "light" and after["default_model"] is None and after["timezone"] == "America/Sao_Paulo"
    # Null empties the object-valued settings.
    cleared = alice.client.patch(f"{API}/me/settings", json={"default_params": None, "notifications": None})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["default_params"], cleared.json()["notifications"]) == ({}, {})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"enhance_prompt": None}, "enhance_prompt"),
        ({"enhance_prompt": "yes"}, "enhance_prompt"),
        ({"theme": "neon"}, "theme"),
        ({"theme": None}, "theme"),
        ({"language": "english please"}, "language"),
        ({"default_provider": "Not A Name!"}, "default_provider"),
        ({"default_model": "m" * 201}, "default_model"),
        ({"default_params": {"steps": 0}}, "default_params.steps"),
        ({"default_params": {"strength": 1.5}}, "default_params.strength"),
        ({"default_params": {"seed": -1}}, "default_params.seed"),
        ({"default_params": {"sampler_of_doom": 1}}, "default_params.sampler_of_doom"),
        ({"notifications": {"email": "yes"}}, "notifications.email"),
        ({"notifications": {f"k{index}": True for index in range(21)}}, "notifications"),
    ],
)
def test_settings_refuse_bad_values(accounts, body: dict, field: str) -> None:
    alice = accounts.make()
    alice.client.patch(f"{API}/me/settings", json={"theme": "dark", "timezone": "Europe/Paris"})
    response = alice.client.patch(f"{API}/me/settings", json=body)
    assert_problem(response, 422, "validation_failed")
    assert field in error_fields(response), response.json()
    after = alice.client.get(f"{API}/me/settings").json()
    assert after["theme"] == "dark" and after["timezone"] == "Europe/Paris" and after["default_params"] == {}


# --- projects ----------------------------------------------------------------------------------


def test_projects_are_created_listed_changed_and_deleted(accounts) -> None:
    alice = accounts.make()
    created = alice.client.post(PROJECTS, json={"name": "  Posters ", "description": "summer campaign"})
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["name"] == "Posters" and project["status"] == "active"
    url = f"{PROJECTS}/{project['id']}"
    assert alice.client.get(url).json() == project

    patched = alice.client.patch(url, json={"status": "completed", "name": "Posters 2"})
    assert patched.status_code == 200
    assert patched.json()["status"] == "completed" and patched.json()["description"] == "summer campaign"

    assert alice.client.delete(url).status_code == 204
    assert_problem(alice.client.get(url), 404, "not_found")
    assert_problem(alice.client.delete(url), 404, "not_found")


def test_project_lists_page_newest_first(accounts) -> None:
    alice = accounts.make()
    ids = [alice.client.post(PROJECTS, json={"name": f"p{index}"}).json()["id"] for index in range(5)]
    first = alice.client.get(PROJECTS, params={"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    second = alice.client.get(PROJECTS, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    third = alice.client.get(PROJECTS, params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [item["id"] for item in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["next_cursor"] is None


def test_deleting_a_project_keeps_its_sessions(accounts, container) -> None:
    alice = accounts.make()
    project_id = alice.client.post(PROJECTS, json={"name": "to go"}).json()["id"]
    with container.db.writing() as db:
        owner = db.get(User, uuid.UUID(alice.id))
        session_id = factories.make_session(db, owner, project_id=uuid.UUID(project_id)).id
    assert alice.client.delete(f"{PROJECTS}/{project_id}").status_code == 204
    with container.db.reading() as db:
        session = db.scalar(select(ChatSession).where(ChatSession.id == session_id))
    assert session is not None and session.project_id is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"name": "ok", "status": "abandoned"}, "status"),
        ({"name": "ok", "description": "d" * 10_001}, "description"),
        ({"name": "ok", "owner_id": str(uuid.uuid4())}, "owner_id"),
        ({"description": "no name"}, "name"),
    ],
)
def test_projects_refuse_bad_input(accounts, body: dict, field: str) -> None:
    alice = accounts.make()
    response = alice.client.post(PROJECTS, json=body)
    assert_problem(response, 422, "validation_failed")
    assert field in error_fields(response)
    assert alice.client.get(PROJECTS).json()["items"] == []


@pytest.mark.parametrize("body", [{"name": None}, {"status": None}, {"status": "gone"}, {"name": " "}, {"id": "x"}])
def test_project_changes_refuse_bad_input(accounts, body: dict) -> None:
    alice = accounts.make()
    project = alice.client.post(PROJECTS, json={"name": "steady"}).json()
    assert_problem(alice.client.patch(f"{PROJECTS}/{project['id']}", json=body), 422, "validation_failed")
    assert alice.client.get(f"{PROJECTS}/{project['id']}").json() == project


# --- administration ---------------------------------------------------------------------------


def test_admins_list_users_and_set_limits(accounts) -> None:
    root, alice = accounts.make(admin=True), accounts.make()
    listed = root.client.get(f"{API}/admin/users").json()
    assert {item["id"] for item in listed["items"]} == {root.id, alice.id}
    limits = {"daily_image_quota": 50, "rate_per_minute": 5, "max_running": 2}
    response = root.client.patch(f"{API}/admin/users/{alice.id}", json=limits)
    assert response.status_code == 200
    assert {name: response.json()[name] for name in limits} == limits
    assert {name: alice.client.get(f"{API}/me").json()[name] for name in limits} == limits
    # null returns a limit to the configured default.
    cleared = root.client.patch(f"{API}/admin/users/{alice.id}", json={"daily_image_quota": None}).json()
    assert cleared["daily_image_quota"] is None and cleared["rate_per_minute"] == 5


def test_admins_promote_and_the_last_admin_stays(accounts) -> None:
    root, alice = accounts.make(admin=True), accounts.make()
    assert_problem(root.client.patch(f"{API}/admin/users/{root.id}", json={"is_admin": False}), 409, "last_admin")
    assert_problem(root.client.patch(f"{API}/admin/users/{root.id}", json={"is_active": False}), 409, "last_admin")
    assert root.client.patch(f"{API}/admin/users/{alice.id}", json={"is_admin": True}).json()["is_admin"] is True
    assert alice.client.get(f"{API}/admin/users").status_code == 200
    assert root.client.patch(f"{API}/admin/users/{root.id}", json={"is_admin": False}).status_code == 200
    assert_problem(root.client.get(f"{API}/admin/users"), 403, "admin_required")


@pytest.mark.parametrize(
    "body",
    [
        {"is_admin": None},
        {"is_active": "false"},
        {"daily_image_quota": -1},
        {"rate_per_minute": "5"},
        {"max_running": 0},
        {"max_running": 101},
        {"email": "taken@example.test"},
    ],
)
def test_admin_changes_refuse_bad_input(accounts, body: dict) -> None:
    root, alice = accounts.make(admin=True), accounts.make()
    before = root.client.get(f"{API}/admin/users").json()
    assert_problem(root.client.patch(f"{API}/admin/users/{alice.id}", json=body), 422, "validation_failed")
    assert root.client.get(f"{API}/admin/users").json() == before


def test_admin_changes_to_unknown_users_are_404(accounts) -> None:
    root = accounts.make(admin=True)
    assert_problem(root.client.patch(f"{API}/admin/users/{uuid.uuid4()}", json={"is_admin": True}), 404)
