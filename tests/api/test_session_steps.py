"""A long session opens with its newest steps and a complete lineage; older steps come a page at a time
from GET /sessions/{id}/steps, with the list cursor, each message and generation on exactly one page."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from imagestudio.sessions.detail import DEFAULT_STEPS
from tests.api.helpers import API, assert_problem, create_user, log_in
from tests.api.test_session_detail_queries import _insert_chain

LENGTH = 2 * DEFAULT_STEPS + 5


def _steps_of(detail: dict) -> dict[str, int]:
    steps: dict[str, int] = {}
    stack = list(detail["lineage"])
    while stack:
        node = stack.pop()
        steps[node["generation_id"]] = node["step"]
        stack.extend(node["children"])
    return steps


def _all_pages(client: TestClient, session_id: str, cursor: str | None, **params: Any) -> list[dict]:
    pages = []
    while cursor is not None:
        answer = client.get(f"{API}/sessions/{session_id}/steps", params={"cursor": cursor, **params})
        assert answer.status_code == 200, answer.text
        pages.append(answer.json())
        cursor = pages[-1]["next_cursor"]
    return pages


def test_the_detail_holds_the_newest_steps_and_pages_reach_every_older_one_once(db, container, app) -> None:
    user = create_user(container)
    session_id = str(_insert_chain(db, user.id, LENGTH))
    client = log_in(app, user.email)

    detail = client.get(f"{API}/sessions/{session_id}").json()
    steps = _steps_of(detail)
    assert sorted(steps.values()) == list(range(1, LENGTH + 1))  # the lineage has every step
    first = [steps[g["id"]] for g in detail["generations"]]
    assert first == list(range(LENGTH - DEFAULT_STEPS + 1, LENGTH + 1))  # the newest, in step order
    assert len(detail["messages"]) == 2 * DEFAULT_STEPS and detail["steps_cursor"]

    pages = _all_pages(client, session_id, detail["steps_cursor"])
    assert [len(page["items"]) for page in pages] == [DEFAULT_STEPS, LENGTH - 2 * DEFAULT_STEPS]
    older = [steps[g["id"]] for page in pages for g in page["items"]]
    assert older == list(range(LENGTH - DEFAULT_STEPS, 0, -1))  # newest first, page after page
    messages = [m["id"] for m in detail["messages"]] + [m["id"] for page in pages for m in page["messages"]]
    assert len(messages) == len(set(messages)) == 2 * LENGTH
    for page in pages:
        answered = {m["generation_id"] for m in page["messages"] if m["generation_id"]}
        assert answered == {g["id"] for g in page["items"]}  # a turn's messages come with its step
        times = [m["created_at"] for m in page["messages"]]
        assert times == sorted(times, reverse=True)

    # A page's size is the client's; the first screen's too.
    assert len(client.get(f"{API}/sessions/{session_id}", params={"steps": 3}).json()["generations"]) == 3
    small = _all_pages(client, session_id, detail["steps_cursor"], limit=7)
    assert [steps[g["id"]] for page in small for g in page["items"]] == older
    # Without a cursor: the newest steps, as the detail has them.
    newest = client.get(f"{API}/sessions/{session_id}/steps").json()
    assert [g["id"] for g in newest["items"]] == [g["id"] for g in reversed(detail["generations"])]


def test_a_step_beyond_the_first_page_is_found_from_its_lineage_node(db, container, app) -> None:
    user = create_user(container)
    session_id = str(_insert_chain(db, user.id, LENGTH))
    client = log_in(app, user.email)
    detail = client.get(f"{API}/sessions/{session_id}").json()
    [node] = [node for node in _lineage_nodes(detail) if node["step"] == 2]
    assert node["generation_id"] not in {g["id"] for g in detail["generations"]}
    assert node["status"] == "succeeded"

    found = None
    for page in _all_pages(client, session_id, detail["steps_cursor"]):
        found = next((g for g in page["items"] if g["id"] == node["generation_id"]), None)
        if found:
            break
    assert found is not None
    assert found["outputs"][0]["id"] == node["thumbnail_asset_id"]
    assert found["parent_generation_id"] == node["parent_generation_id"]


def _lineage_nodes(detail: dict) -> list[dict]:
    nodes, stack = [], list(detail["lineage"])
    while stack:
        node = stack.pop()
        nodes.append(node)
        stack.extend(node["children"])
    return nodes


def test_a_turn_is_never_split_between_pages(accounts) -> None:
    """Chat turns write the user's message a moment before the assistant's, which the step goes by."""
    client = accounts.make().client
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    turns = [
        client.post(f"{API}/sessions/{session_id}/messages", json={"content": f"turn {n}", "mode": "fresh"}).json()
        for n in range(3)
    ]
    detail = client.get(f"{API}/sessions/{session_id}", params={"steps": 2}).json()
    assert [m["content"] for m in detail["messages"] if m["role"] == "user"] == ["turn 1", "turn 2"]
    assert len(detail["messages"]) == 4
    [page] = _all_pages(client, session_id, detail["steps_cursor"], limit=2)
    assert [m["id"] for m in page["messages"]] == [turns[0]["assistant_message"]["id"], turns[0]["user_message"]["id"]]
    assert [g["id"] for g in page["items"]] == [turns[0]["generation_id"]]


def test_a_cursor_not_handed_out_is_a_problem(accounts) -> None:
    client = accounts.make().client
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    for cursor in ("yesterday", "12_not-hex", "1_" + "0" * 31):
        answer = client.get(f"{API}/sessions/{session_id}/steps", params={"cursor": cursor})
        problem = assert_problem(answer, 422, "invalid_cursor")
        assert problem["errors"][0]["field"] == "cursor"
    assert_problem(client.get(f"{API}/sessions/{session_id}/steps", params={"limit": 0}), 422)
    assert_problem(client.get(f"{API}/sessions/{session_id}", params={"steps": 0}), 422)


def test_another_users_session_has_no_steps(db, container, app, accounts) -> None:
    owner = create_user(container)
    session_id = str(_insert_chain(db, owner.id, 3))
    stranger = accounts.make().client
    cursor = log_in(app, owner.email).get(f"{API}/sessions/{session_id}", params={"steps": 1}).json()["steps_cursor"]
    assert_problem(stranger.get(f"{API}/sessions/{session_id}"), 404)
    assert_problem(stranger.get(f"{API}/sessions/{session_id}/steps"), 404)
    assert_problem(stranger.get(f"{API}/sessions/{session_id}/steps", params={"cursor": cursor}), 404)


def test_a_long_sessions_detail_travels_compressed(db, container, app) -> None:
    user = create_user(container)
    session_id = str(_insert_chain(db, user.id, 200))
    client = log_in(app, user.email)
    detail = client.get(f"{API}/sessions/{session_id}", headers={"Accept-Encoding": "gzip"})
    assert detail.headers["content-encoding"] == "gzip"
    assert detail.num_bytes_downloaded < len(detail.content) / 3
    plain = client.get(f"{API}/sessions/{session_id}", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json()["lineage"] == detail.json()["lineage"]
    # A small answer is not worth compressing.
    small = client.get(f"{API}/me", headers={"Accept-Encoding": "gzip"})
    assert small.status_code == 200 and "content-encoding" not in small.headers
