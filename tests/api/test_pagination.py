"""One page model and one cursor format for every list of the API."""

from __future__ import annotations

import re

from imagestudio.kit.pagination import CURSOR_PATTERN
from tests.api.helpers import API, assert_problem, error_fields

LISTS = [
    "/api/v1/api-keys",
    "/api/v1/providers",
    "/api/v1/projects",
    "/api/v1/sessions",
    "/api/v1/sessions/{session_id}/messages",
    "/api/v1/generations",
    "/api/v1/prompts",
    "/api/v1/admin/users",
]
# Cursors nobody handed out but of the documented shape: the oldest and the newest expressible.
HANDMADE = ["0_" + "0" * 32, "99999999999999999_" + "f" * 32]


def _schema_of(openapi: dict, ref: str) -> dict:
    return openapi["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_every_list_answers_a_page_and_states_the_cursor_format(client) -> None:
    openapi = client.get(f"{API}/openapi.json").json()
    for path in LISTS:
        operation = openapi["paths"][path]["get"]
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        page = _schema_of(openapi, answer["$ref"])
        assert set(page["properties"]) == {"items", "next_cursor"}, path
        parameters = {item["name"]: item["schema"] for item in operation.get("parameters", [])}
        if path.endswith("/providers"):
            continue  # always one page
        cursor = parameters["cursor"]
        options = [cursor, *cursor.get("anyOf", [])]
        assert any(option.get("pattern") == CURSOR_PATTERN for option in options), (path, cursor)


def test_paging_through_api_keys_sees_each_once_newest_first(accounts) -> None:
    alice = accounts.make()
    made = [alice.client.post(f"{API}/api-keys", json={"name": f"k{n}", "scopes": ["read"]}).json() for n in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = alice.client.get(f"{API}/api-keys", params=params).json()
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert re.fullmatch(CURSOR_PATTERN, cursor), cursor
    assert seen == [key["id"] for key in reversed(made)]


def test_every_cursor_of_the_documented_shape_is_accepted_and_others_are_refused(accounts) -> None:
    alice = accounts.make(admin=True)
    session_id = alice.client.post(f"{API}/sessions", json={}).json()["id"]
    paths = [path.replace("{session_id}", session_id) for path in LISTS if not path.endswith("/providers")]
    for path in paths:
        oldest, newest = (alice.client.get(path, params={"cursor": cursor}) for cursor in HANDMADE)
        assert oldest.status_code == 200 and newest.status_code == 200, (path, oldest.text, newest.text)
        assert oldest.json()["items"] == []  # nothing is older than the epoch
        for cursor in ("not-a-cursor", "12_" + "0" * 31, "1_" + "G" * 32, "MjAyNnxub3BlPw"):
            response = alice.client.get(path, params={"cursor": cursor})
            assert_problem(response, 422, "invalid_cursor")
            assert error_fields(response) == {"cursor"}
