"""The projects workspace: projects with settings that sessions inside them take as defaults, public
links and their revocation, a session's context reaching the language model, and session expiry."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from imagestudio.language import LanguageRegistry
from imagestudio.models import ChatSession, Project
from imagestudio.models.types import utcnow
from tests.api.helpers import API, assert_problem, browser_client, error_fields, run_queue, upload
from tests.fakes.chat_openai import FakeChatCompletions, chat_model

PROJECTS = f"{API}/projects"
SETTINGS = {
    "provider": "builtin",
    "model": "solid",
    "width": 96,
    "height": 64,
    "params": {"steps": 7, "seed": 1234},
    "prompt_options": {"style": "watercolour", "lighting": "golden hour"},
}


def _project(client: TestClient, **fields: object) -> dict:
    response = client.post(PROJECTS, json={"name": "Posters", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def _session_in(client: TestClient, project_id: str, **fields: object) -> str:
    response = client.post(f"{API}/sessions", json={"project_id": project_id, **fields})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _turn(client: TestClient, session_id: str, **body: object) -> dict:
    response = client.post(f"{API}/sessions/{session_id}/messages", json={"mode": "fresh", **body})
    assert response.status_code == 201, response.text
    return response.json()["generation"]


# --- projects and their settings -------------------------------------------------------------------


def test_a_project_keeps_its_description_status_and_settings(accounts) -> None:
    alice = accounts.make()
    project = _project(alice.client, description="summer campaign", status="draft", settings=SETTINGS)
    assert project["description"] == "summer campaign" and project["status"] == "draft"
    assert project["settings"] == SETTINGS and project["is_public"] is False and project["public_url"] is None
    url = f"{PROJECTS}/{project['id']}"
    for status in ("active", "completed", "archived"):
        assert alice.client.patch(url, json={"status": status}).json()["status"] == status
    renamed = alice.client.patch(url, json={"name": "Posters 2", "settings": {"aspect_ratio": "16:9"}}).json()
    assert renamed["name"] == "Posters 2" and renamed["settings"] == {"aspect_ratio": "16:9"}
    assert alice.client.get(url).json()["settings"] == {"aspect_ratio": "16:9"}
    assert alice.client.patch(url, json={"settings": {}}).json()["settings"] == {}


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"provider": "nobody"}, "settings.provider"),
        ({"provider": "builtin", "model": "no-such-model"}, "settings.model"),
        ({"model": "solid"}, "settings"),
        ({"width": 96}, "settings"),
        ({"width": 10**6, "height": 64}, "settings.width"),
        ({"aspect_ratio": "wide"}, "settings.aspect_ratio"),
        ({"params": {"steps": 0}}, "settings.params.steps"),
        ({"params": {"guidance": "high"}}, "settings.params.guidance"),
        ({"prompt_options": {"style": "x" * 10_000}}, "settings.prompt_options.style"),
        ({"prompt_options": {"mood": "calm"}}, "settings.prompt_options.mood"),
        ({"num_images": 3}, "settings.num_images"),
    ],
)
def test_project_settings_are_checked_like_requests(accounts, given: dict, field: str) -> None:
    alice = accounts.make()
    refused = alice.client.post(PROJECTS, json={"name": "p", "settings": given})
    assert_problem(refused, 422, "validation_failed")
    assert any(name == field or name.startswith(f"{field}.") for name in error_fields(refused)), refused.json()
    project = _project(alice.client, settings={"aspect_ratio": "1:1"})
    assert_problem(alice.client.patch(f"{PROJECTS}/{project['id']}", json={"settings": given}), 422)
    assert alice.client.get(f"{PROJECTS}/{project['id']}").json()["settings"] == {"aspect_ratio": "1:1"}
    assert len(alice.client.get(PROJECTS).json()["items"]) == 1


def test_sessions_in_a_project_take_its_settings_as_defaults(accounts) -> None:
    alice = accounts.make()
    # The owner's own defaults sit below the project's: guidance survives, steps are the project's.
    alice.client.patch(f"{API}/me/settings", json={"default_params": {"steps": 30, "guidance": 4.5}})
    project = _project(alice.client, settings=SETTINGS)
    session_id = _session_in(alice.client, project["id"])
    made = _turn(alice.client, session_id, content="a lighthouse")
    assert (made["provider"], made["model"], made["width"], made["height"]) == ("builtin", "solid", 96, 64)
    assert made["params"]["steps"] == 7 and made["params"]["seed"] == 1234 and made["params"]["guidance"] == 4.5
    assert made["prompt_options"]["style"] == "watercolour" and made["prompt_options"]["lighting"] == "golden hour"
    assert "watercolour style" in made["enhanced_prompt"]

    # What the request says wins, field by field.
    own = _turn(
        alice.client,
        session_id,
        content="a boat",
        model="builtin-procedural",
        aspect_ratio="1:1",
        params={"steps": 3},
        prompt_options={"style": "ink"},
    )
    assert own["model"] == "builtin-procedural" and own["width"] == own["height"]
    assert own["params"]["steps"] == 3 and own["params"]["seed"] == 1234
    assert own["prompt_options"]["style"] == "ink" and own["prompt_options"]["lighting"] == "golden hour"

    # POST /generations naming the session takes them too; outside the project they do not apply.
    direct = alice.client.post(f"{API}/generations", json={"prompt": "a fox", "session_id": session_id}).json()
    assert (direct["model"], direct["width"], direct["params"]["steps"]) == ("solid", 96, 7)
    outside = alice.client.post(f"{API}/generations", json={"prompt": "a fox", "width": 64, "height": 64}).json()
    assert outside["params"]["steps"] == 30 and outside["prompt_options"]["style"] is None


def test_a_foreign_session_borrows_no_project_settings(accounts) -> None:
    alice, mallory = accounts.make(), accounts.make()
    project = _project(alice.client, settings=SETTINGS)
    session_id = _session_in(alice.client, project["id"])
    response = mallory.client.post(f"{API}/generations", json={"prompt": "a fox", "session_id": session_id})
    assert 400 <= response.status_code < 500 and "watercolour" not in response.text


# --- public links ------------------------------------------------------------------------------------


def _published(client: TestClient, project_id: str) -> str:
    response = client.patch(f"{PROJECTS}/{project_id}", json={"is_public": True})
    assert response.status_code == 200, response.text
    out = response.json()
    assert out["is_public"] is True and out["public_url"]
    return out["public_url"].rsplit("/p/", 1)[1]


def test_a_published_project_is_readable_by_anyone_with_the_link_until_revoked(accounts, container) -> None:
    alice = accounts.make()
    project = _project(alice.client, description="for the client")
    shown = _session_in(alice.client, project["id"], title="Shown session")
    elsewhere = alice.client.post(f"{API}/sessions", json={"title": "Private session"}).json()["id"]
    other_project = _project(alice.client, name="Other")
    hidden = _session_in(alice.client, other_project["id"], title="Other project's session")
    _turn(alice.client, shown, content="a red kite over dunes", width=64, height=64)
    _turn(alice.client, elsewhere, content="my secret sketch", width=64, height=64)
    _turn(alice.client, hidden, content="unreleased product", width=64, height=64)
    unused = upload(alice.client).json()["id"]
    run_queue(container)
    private_output = alice.client.get(f"{API}/sessions/{elsewhere}").json()["generations"][0]["outputs"][0]["id"]

    token = _published(alice.client, project["id"])
    stored = alice.client.get(f"{PROJECTS}/{project['id']}").json()
    assert stored["is_public"] is True and stored["public_url"] is None  # the link is shown once
    with container.db.reading() as db:
        row = db.get(Project, uuid.UUID(project["id"]))
        assert row is not None and row.public_token_hash and token not in row.public_token_hash

    visitor = TestClient(alice.app, base_url="http://testserver")  # no cookies, no key
    page = visitor.get(f"{API}/public/projects/{token}")
    assert page.status_code == 200, page.text
    view = page.json()
    assert view["name"] == "Posters" and view["description"] == "for the client"
    assert [session["title"] for session in view["sessions"]] == ["Shown session"]
    (item,) = view["sessions"][0]["items"]
    assert item["prompt"] == "a red kite over dunes" and len(item["images"]) == 1
    for leaked in (alice.email, alice.id, "my secret sketch", "unreleased product", "Other", "owner"):
        assert leaked not in page.text
    image = visitor.get(item["images"][0]["content_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png" and len(image.content) > 0
    # Browsers ask again each time, so after a revocation not even their cache shows it.
    assert image.headers["cache-control"] == "no-cache" and page.headers["cache-control"] == "no-store"
    etag = {"If-None-Match": image.headers["etag"]}
    assert visitor.get(item["images"][0]["content_url"], headers=etag).status_code == 304
    assert visitor.get(item["images"][0]["thumbnail_url"]).status_code == 200
    # Only the project's own outputs come through the link: not an upload, not another session's image.
    for asset_id in (unused, private_output, str(uuid.uuid4())):
        assert_problem(visitor.get(f"{API}/public/projects/{token}/assets/{asset_id}/content"), 404, "not_found")
    # The public page renders without an account and names nothing of the owner's.
    html = visitor.get(f"/p/{token}")
    assert html.status_code == 200 and "a red kite over dunes" in html.text and alice.email not in html.text

    # Revoking ends access at once, for the view, the images and the page.
    revoked = alice.client.patch(f"{PROJECTS}/{project['id']}", json={"is_public": False}).json()
    assert revoked["is_public"] is False and revoked["published_at"] is None
    assert_problem(visitor.get(f"{API}/public/projects/{token}"), 404, "not_found")
    assert_problem(visitor.get(item["images"][0]["content_url"]), 404, "not_found")
    assert_problem(visitor.get(item["images"][0]["content_url"], headers=etag), 404, "not_found")
    assert visitor.get(f"/p/{token}").status_code == 404
    # Publishing again makes a new link; the old one stays dead.
    again = _published(alice.client, project["id"])
    assert again != token and visitor.get(f"{API}/public/projects/{again}").status_code == 200
    assert_problem(visitor.get(f"{API}/public/projects/{token}"), 404, "not_found")
    # Deleting the project ends the link too.
    assert alice.client.delete(f"{PROJECTS}/{project['id']}").status_code == 204
    assert_problem(visitor.get(f"{API}/public/projects/{again}"), 404, "not_found")


def test_a_project_published_when_made_answers_with_its_link(accounts) -> None:
    alice = accounts.make()
    project = _project(alice.client, is_public=True)
    assert project["is_public"] is True and project["public_url"].startswith("http://testserver/p/")
    token = project["public_url"].rsplit("/", 1)[1]
    assert browser_client(alice.app).get(f"{API}/public/projects/{token}").json()["sessions"] == []


@pytest.mark.parametrize("token", ["x" * 43, "short", "a" * 101, "not valid!" * 5])
def test_unknown_or_malformed_links_find_nothing(accounts, token: str) -> None:
    alice = accounts.make()
    _published(alice.client, _project(alice.client)["id"])
    response = browser_client(alice.app).get(f"{API}/public/projects/{token}")
    assert response.status_code in (404, 422) and "Posters" not in response.text


# --- a session's context and expiry -----------------------------------------------------------------


def test_a_sessions_context_reaches_every_language_model_call(accounts, container) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    alice = accounts.make()
    note = "Brand colours: teal #008080 and coral. Audience: children."
    session = alice.client.post(f"{API}/sessions", json={"context": note}).json()
    assert session["context"] == note
    fake.reply_next("A teal lighthouse, coral sky", "Teal Lighthouse")
    _turn(alice.client, session["id"], content="a lighthouse", width=64, height=64, enhance_prompt=True)
    run_queue(container)
    assert len(fake.requests) == 2  # the enhancement and the title
    for recorded in fake.requests:
        system = [m["content"] for m in recorded.json["messages"] if m["role"] == "system"]
        assert any(note in text for text in system), recorded.json["messages"]

    # A session without a note sends none; changing the note changes what is sent.
    plain = alice.client.post(f"{API}/sessions", json={}).json()
    _turn(alice.client, plain["id"], content="a fox", width=64, height=64, enhance_prompt=True)
    run_queue(container)
    assert all(note not in str(recorded.json["messages"]) for recorded in fake.requests[2:])
    changed = alice.client.patch(f"{API}/sessions/{session['id']}", json={"context": "Only greys."}).json()
    assert changed["context"] == "Only greys."
    assert_problem(alice.client.patch(f"{API}/sessions/{session['id']}", json={"context": None}), 422)
    assert_problem(alice.client.patch(f"{API}/sessions/{session['id']}", json={"context": "x" * 4001}), 422)
    _turn(alice.client, session["id"], content="a boat", width=64, height=64, enhance_prompt=True)
    run_queue(container)
    assert "Only greys." in str(fake.last.json["messages"]) and note not in str(fake.last.json["messages"])


def test_the_workers_maintenance_archives_expired_sessions(accounts, container) -> None:
    alice = accounts.make()
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    expiring = alice.client.post(f"{API}/sessions", json={"title": "temp", "expires_at": soon}).json()["id"]
    lasting = alice.client.post(f"{API}/sessions", json={"title": "kept"}).json()["id"]
    with container.db.writing() as db:
        row = db.get(ChatSession, uuid.UUID(expiring))
        assert row is not None
        row.expires_at = utcnow() - timedelta(minutes=1)
        db.commit()
    # A queued generation makes run_queue start a worker, whose maintenance loop runs at start.
    assert alice.client.post(f"{API}/generations", json={"prompt": "x", "width": 64, "height": 64}).status_code == 201
    run_queue(container)
    archived = alice.client.get(f"{API}/sessions", params={"archived": "true"}).json()["items"]
    assert [session["id"] for session in archived] == [expiring]
    assert lasting in [session["id"] for session in alice.client.get(f"{API}/sessions").json()["items"]]
