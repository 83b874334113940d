"""A published project shows its sessions' UI generations: prompts and sandboxed previews, served
under the project's link (checked on every request), never another project's or a private session's.

Every test runs on SQLite and PostgreSQL (the `db` fixture) with the built-in composer.
"""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from imagestudio.uicode.preview import PREVIEW_POLICY
from tests.api.helpers import API, assert_problem, run_queue

PROJECTS = f"{API}/projects"


def _project(client: TestClient, name: str) -> str:
    response = client.post(PROJECTS, json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _session_in(client: TestClient, project_id: str | None, title: str) -> str:
    body: dict[str, object] = {"title": title}
    if project_id is not None:
        body["project_id"] = project_id
    response = client.post(f"{API}/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _turn(client: TestClient, session_id: str, content: str, mode: str) -> dict:
    body: dict[str, object] = {"content": content, "mode": mode}
    if mode == "fresh":
        body |= {"width": 64, "height": 64}
    response = client.post(f"{API}/sessions/{session_id}/messages", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _publish(client: TestClient, project_id: str) -> str:
    response = client.patch(f"{PROJECTS}/{project_id}", json={"is_public": True})
    assert response.status_code == 200, response.text
    return response.json()["public_url"].rsplit("/p/", 1)[1]


def test_a_published_project_shows_its_ui_previews_until_revoked(accounts, container) -> None:
    alice = accounts.make()
    project_id = _project(alice.client, "Landing pages")
    shown = _session_in(alice.client, project_id, "Shown session")
    other_project = _project(alice.client, "Unreleased")
    hidden = _session_in(alice.client, other_project, "Hidden session")
    private = _session_in(alice.client, None, "Private session")
    _turn(alice.client, shown, "a red kite over dunes", "fresh")
    ui_id = _turn(alice.client, shown, 'A login form for "Northwind"', "ui")["ui_generation_id"]
    hidden_ui = _turn(alice.client, hidden, "a secret pricing table", "ui")["ui_generation_id"]
    private_ui = _turn(alice.client, private, "my private dashboard", "ui")["ui_generation_id"]
    run_queue(container)
    token = _publish(alice.client, project_id)

    visitor = TestClient(alice.app, base_url="http://testserver")  # no cookies, no key
    page = visitor.get(f"{API}/public/projects/{token}")
    assert page.status_code == 200, page.text
    (session,) = page.json()["sessions"]
    image_item, ui_item = session["items"]  # oldest first, both kinds in one list
    assert image_item["kind"] == "generation" and image_item["prompt"] == "a red kite over dunes"
    assert ui_item["kind"] == "ui" and ui_item["id"] == ui_id
    assert ui_item["prompt"] == 'A login form for "Northwind"' and ui_item["code_bytes"] > 0
    assert ui_item["preview_url"] == f"{API}/public/projects/{token}/ui-generations/{ui_id}/preview"
    for leaked in ("a secret pricing table", "my private dashboard", hidden_ui, private_ui, alice.email):
        assert leaked not in page.text

    preview = visitor.get(ui_item["preview_url"])
    assert preview.status_code == 200 and preview.headers["content-type"].startswith("text/html")
    assert preview.headers["content-security-policy"] == PREVIEW_POLICY
    assert "allow-same-origin" not in preview.headers["content-security-policy"]
    assert preview.headers["x-frame-options"] == "SAMEORIGIN"
    assert preview.headers["cache-control"] == "private, no-store"
    owner_view = alice.client.get(f"{API}/ui-generations/{ui_id}").json()
    assert preview.text == owner_view["code"] and len(preview.content) == ui_item["code_bytes"]
    # Only the project's own UI generations come through its link.
    for other in (hidden_ui, private_ui, str(uuid.uuid4())):
        assert_problem(visitor.get(f"{API}/public/projects/{token}/ui-generations/{other}/preview"), 404, "not_found")

    # The page shows it in a sandboxed frame that may run scripts but never shares the studio's origin.
    html = visitor.get(f"/p/{token}").text
    assert f'src="{ui_item["preview_url"]}" sandbox="allow-scripts"' in html
    assert "allow-same-origin" not in html and "my private dashboard" not in html

    # Revoking ends access at once, for the answer and for previews already handed out.
    assert alice.client.patch(f"{PROJECTS}/{project_id}", json={"is_public": False}).status_code == 200
    assert_problem(visitor.get(f"{API}/public/projects/{token}"), 404, "not_found")
    assert_problem(visitor.get(ui_item["preview_url"]), 404, "not_found")


def test_a_ui_generation_without_code_is_not_shown(accounts, container) -> None:
    alice = accounts.make()
    project_id = _project(alice.client, "Drafts")
    session_id = _session_in(alice.client, project_id, "Drafts")
    ui_id = _turn(alice.client, session_id, "a signup card", "ui")["ui_generation_id"]
    canceled = alice.client.post(f"{API}/ui-generations/{ui_id}/cancel")
    assert canceled.json()["status"] == "canceled", canceled.text
    token = _publish(alice.client, project_id)

    visitor = TestClient(alice.app, base_url="http://testserver")
    assert visitor.get(f"{API}/public/projects/{token}").json()["sessions"][0]["items"] == []
    assert_problem(visitor.get(f"{API}/public/projects/{token}/ui-generations/{ui_id}/preview"), 404, "not_found")


@pytest.mark.parametrize(
    ("token", "ui_id"),
    [
        ("short", None),
        ("a" * 101, None),
        ("not valid!" * 5, None),
        ("x" * 43, None),  # well formed, unknown
        (None, "not-a-uuid"),
        (None, "1" * 5000),
        (None, "../../ui-generations"),
    ],
)
def test_malformed_or_unknown_preview_links_serve_nothing(accounts, container, token, ui_id) -> None:
    alice = accounts.make()
    project_id = _project(alice.client, "Forms")
    real_ui = _turn(alice.client, _session_in(alice.client, project_id, "Forms"), "a form", "ui")["ui_generation_id"]
    run_queue(container)
    real_token = _publish(alice.client, project_id)
    url = f"{API}/public/projects/{token or real_token}/ui-generations/{ui_id or real_ui}/preview"
    response = TestClient(alice.app, base_url="http://testserver").get(url)
    assert response.status_code in (404, 422), response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "sandbox" not in response.headers.get("content-security-policy", "")  # no document served
