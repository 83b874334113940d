"""API keys: shown once, stored hashed, scoped, revocable, expiring, rate-limited, counted."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, update

from imagestudio.accounts.deps import CurrentUser
from imagestudio.accounts.service import flush_api_key_uses
from imagestudio.kit.observability import configure_logging
from imagestudio.kit.pending import PendingUses
from imagestudio.models import ApiKey, Project
from imagestudio.models.types import utcnow
from tests.api.helpers import API, BASE_URL, assert_problem, bearer_client, error_fields, shift_rate_windows

KEYS = f"{API}/api-keys"


def _key_row(container, key_id: str) -> ApiKey:
    with container.db.reading() as db:
        return db.get(ApiKey, uuid.UUID(key_id))


def _count_projects(container) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(Project))


def test_the_full_key_is_shown_once_and_stored_only_as_a_hash(accounts, container) -> None:
    alice = accounts.make()
    created = alice.client.post(KEYS, json={"name": "laptop script", "scopes": ["read"]})
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("isk_") and key.startswith(body["prefix"] + "_") and len(body["prefix"]) == 12
    assert body["scopes"] == ["read"] and body["usage_count"] == 0 and body["revoked_at"] is None

    listed = alice.client.get(KEYS).json()["items"]
    assert [item["id"] for item in listed] == [body["id"]]
    assert "key" not in listed[0] and key not in created.text.replace(key, "", 1)
    row = _key_row(container, body["id"])
    assert row.prefix == body["prefix"]
    assert key not in (row.key_hash, row.prefix, row.name) and len(row.key_hash) == 64


def test_keys_authenticate_and_count_their_use(accounts, container) -> None:
    alice = accounts.make()
    key = alice.api_key()
    key_id = alice.client.get(KEYS).json()["items"][0]["id"]
    # Uses are written at most once an hour here: the listing must still count every one.
    container.api_key_uses = PendingUses(3600)
    program = bearer_client(alice.app, key)
    before = utcnow()
    for _ in range(3):
        response = program.get(f"{API}/me")
        assert response.status_code == 200 and response.json()["id"] == alice.id
    listed = alice.client.get(KEYS).json()["items"][0]
    assert listed["usage_count"] == 3 and datetime.fromisoformat(listed["last_used_at"]) >= before
    row = _key_row(container, key_id)
    assert row.usage_count == 3 and row.last_used_at >= before
    # "bearer" is case-insensitive, as HTTP auth schemes are.
    assert TestClient(alice.app, headers={"Authorization": f"bearer {key}"}).get(f"{API}/me").status_code == 200


def test_a_programs_log_lines_name_the_keys_user(accounts, capsys) -> None:
    alice = accounts.make()
    program = alice.bearer()

    @alice.app.get("/api/v1/test-log")
    def log_something(user: CurrentUser) -> dict:
        logging.getLogger("imagestudio.test").warning("key at work")
        return {}

    configure_logging("json", "info", force=True)
    try:
        capsys.readouterr()
        assert program.get("/api/v1/test-log").status_code == 200
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        root = logging.getLogger()
        for handler in root.handlers[:]:
            if getattr(handler, "_imagestudio", False):
                root.removeHandler(handler)
    (record,) = [line for line in lines if line["message"] == "key at work"]
    assert record["user_id"] == alice.id


@contextmanager
def _api_key_updates(container) -> Iterator[list[str]]:
    """The UPDATE statements on api_keys the database runs inside the block."""
    seen: list[str] = []

    def note(_conn, _cursor, statement: str, *_args) -> None:
        if statement.lstrip().upper().startswith("UPDATE API_KEYS"):
            seen.append(statement)

    event.listen(container.db.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(container.db.engine, "before_cursor_execute", note)


def test_key_uses_are_written_together_not_one_write_per_request(accounts, container) -> None:
    alice = accounts.make()
    key, other_key = alice.api_key(), alice.api_key()
    container.api_key_uses = PendingUses(3600)
    program, other = bearer_client(alice.app, key), bearer_client(alice.app, other_key)
    with _api_key_updates(container) as updates:
        for _ in range(10):
            assert program.get(f"{API}/me").status_code == 200
            assert other.get(f"{API}/me").status_code == 200
        # The first use found a flush due; the 19 after it are only counted in memory.
        assert len(updates) == 1
        flush_api_key_uses(container.db, container.api_key_uses)
    with container.db.reading() as db:
        counts = sorted(db.scalars(select(ApiKey.usage_count).where(ApiKey.user_id == uuid.UUID(alice.id))))
    assert counts == [10, 10]
    # One UPDATE per key for the 19 uses pending at the flush.
    assert len(updates) == 3


def test_key_uses_counted_in_memory_are_written_when_the_server_stops(accounts, container) -> None:
    alice = accounts.make()
    key = alice.api_key()
    container.api_key_uses = PendingUses(3600)
    with TestClient(alice.app, base_url=BASE_URL, headers={"Authorization": f"Bearer {key}"}) as program:
        for _ in range(4):
            assert program.get(f"{API}/me").status_code == 200
        assert len(container.api_key_uses) == 1
    assert len(container.api_key_uses) == 0
    with container.db.reading() as db:
        assert db.scalar(select(ApiKey.usage_count).where(ApiKey.user_id == uuid.UUID(alice.id))) == 4


def test_a_failed_write_of_key_uses_keeps_them_for_the_next(accounts, container) -> None:
    alice = accounts.make()
    key = alice.api_key()
    uses = container.api_key_uses = PendingUses(3600)
    program = bearer_client(alice.app, key)
    for _ in range(3):
        assert program.get(f"{API}/me").status_code == 200

    def refuse(*_args) -> None:
        raise RuntimeError("the database went away")

    event.listen(container.db.engine, "before_cursor_execute", refuse)
    try:
        with pytest.raises(RuntimeError):
            flush_api_key_uses(container.db, uses)
    finally:
        event.remove(container.db.engine, "before_cursor_execute", refuse)
    assert len(uses) == 1
    flush_api_key_uses(container.db, uses)
    with container.db.reading() as db:
        assert db.scalar(select(ApiKey.usage_count).where(ApiKey.user_id == uuid.UUID(alice.id))) == 3


def test_a_request_without_credentials_is_401_with_a_bearer_challenge(app, accounts) -> None:
    accounts.make()
    response = TestClient(app, base_url=BASE_URL).get(f"{API}/me")
    assert_problem(response, 401, "not_authenticated")
    assert response.json()["detail"] == "Sign in or send an API key."
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer", id="empty"),
        pytest.param("Bearer not-a-key", id="garbage"),
        pytest.param("Bearer isk_short_abc", id="truncated"),
        pytest.param("Basic dXNlcjpwYXNz", id="other scheme"),
        pytest.param("Token isk_AAAAAAAA_" + "a" * 43, id="wrong scheme word"),
        pytest.param("Bearer isk_AAAAAAAA_" + "a" * 43, id="unknown prefix"),
    ],
)
def test_malformed_and_unknown_keys_are_401_with_a_bearer_challenge(app, accounts, authorization: str) -> None:
    accounts.make()
    response = TestClient(app, base_url=BASE_URL, headers={"Authorization": authorization}).get(f"{API}/me")
    assert_problem(response, 401, "invalid_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_valid_key_under_another_scheme_is_a_malformed_header(accounts) -> None:
    alice = accounts.make()
    key = alice.api_key()

    def me(authorization: str):
        return TestClient(alice.app, base_url=BASE_URL, headers={"Authorization": authorization}).get(f"{API}/me")

    for authorization in (f"Token {key}", f"Basic {key}", "Bearer"):
        response = me(authorization)
        body = assert_problem(response, 401, "invalid_api_key")
        assert body["detail"] == "Authorization must be 'Bearer <API key>'.", authorization
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'
    # Several spaces may separate the scheme from the key (RFC 9110's 1*SP).
    assert me(f"Bearer   {key}").json()["id"] == alice.id


def test_a_known_prefix_with_a_wrong_secret_is_refused(accounts, container) -> None:
    alice = accounts.make()
    key = alice.api_key()
    forged = key[: len("isk_") + 8] + "_" + "b" * 43
    response = bearer_client(alice.app, forged).get(f"{API}/me")
    assert_problem(response, 401, "invalid_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert alice.client.get(KEYS).json()["items"][0]["usage_count"] == 0


def test_revoked_keys_stop_working_at_once(accounts) -> None:
    alice = accounts.make()
    key = alice.api_key()
    program = bearer_client(alice.app, key)
    assert program.get(f"{API}/me").status_code == 200
    key_id = alice.client.get(KEYS).json()["items"][0]["id"]
    assert alice.client.delete(f"{KEYS}/{key_id}").status_code == 204
    response = program.get(f"{API}/me")
    assert_problem(response, 401, "invalid_api_key")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    listed = alice.client.get(KEYS).json()["items"]
    assert listed[0]["revoked_at"] is not None
    # Revoking again is harmless; an unknown id is not found.
    assert alice.client.delete(f"{KEYS}/{key_id}").status_code == 204
    assert_problem(alice.client.delete(f"{KEYS}/{uuid.uuid4()}"), 404, "not_found")


def test_expired_keys_are_refused(accounts, container) -> None:
    alice = accounts.make()
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    key = alice.api_key(expires_at=soon)
    program = bearer_client(alice.app, key)
    assert program.get(f"{API}/me").status_code == 200
    with container.db.writing() as db:
        db.execute(update(ApiKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert_problem(program.get(f"{API}/me"), 401, "invalid_api_key")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2999-01-01T00:00:00"}, "expires_at"),  # no time zone
        ({"scopes": []}, "scopes"),
        ({"scopes": ["read", "everything"]}, "scopes.1"),
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
        ({"name": ""}, "name"),
        ({"name": "n" * 201}, "name"),
        ({"prefix": "isk_mine1234"}, "prefix"),
    ],
)
def test_bad_key_requests_are_refused(accounts, container, fields: dict, field: str) -> None:
    alice = accounts.make()
    response = alice.client.post(KEYS, json={"name": "k", "scopes": ["read"], **fields})
    assert_problem(response, 422, "validation_failed")
    assert field in error_fields(response)
    assert alice.client.get(KEYS).json()["items"] == []


def test_read_keys_cannot_change_state(accounts, container) -> None:
    alice = accounts.make()
    reader = alice.bearer(scopes=["read"])
    assert reader.get(f"{API}/projects").status_code == 200
    refused = assert_problem(reader.post(f"{API}/projects", json={"name": "nope"}), 403, "insufficient_scope")
    assert refused["detail"] == "This API key may only read."
    assert_problem(reader.patch(f"{API}/me", json={"display_name": "nope"}), 403, "insufficient_scope")
    assert _count_projects(container) == 0
    assert alice.client.get(f"{API}/me").json()["display_name"] == "Test"


def test_generate_keys_change_state_but_not_credentials(accounts, container) -> None:
    alice = accounts.make()
    writer = alice.bearer(scopes=["generate"])
    assert writer.post(f"{API}/projects", json={"name": "ok"}).status_code == 201
    refused = assert_problem(writer.post(KEYS, json={"name": "child", "scopes": ["read"]}), 403, "login_required")
    assert refused["detail"] == "Sign in to manage credentials; API keys cannot."
    key_id = alice.client.get(KEYS).json()["items"][0]["id"]
    assert_problem(writer.delete(f"{KEYS}/{key_id}"), 403, "login_required")
    assert len(alice.client.get(KEYS).json()["items"]) == 1


def test_only_admins_get_admin_keys_and_admin_routes_need_them(accounts) -> None:
    alice, root = accounts.make(), accounts.make(admin=True)
    refused = alice.client.post(KEYS, json={"name": "sneaky", "scopes": ["admin"]})
    assert_problem(refused, 403, "insufficient_scope")
    assert alice.client.get(KEYS).json()["items"] == []

    admin_key = root.bearer(scopes=["admin"])
    assert admin_key.get(f"{API}/admin/users").status_code == 200
    plain_key = root.bearer(scopes=["read", "generate"])
    body = assert_problem(plain_key.get(f"{API}/admin/users"), 403, "insufficient_scope")
    assert body["detail"] == "This API key lacks the admin scope."
    body = assert_problem(alice.client.get(f"{API}/admin/users"), 403, "admin_required")
    assert body["detail"] == "Only administrators may do this."


def test_a_demoted_admins_admin_key_loses_its_power(accounts) -> None:
    root, other_root = accounts.make(admin=True), accounts.make(admin=True)
    admin_key = root.bearer(scopes=["admin"])
    assert other_root.client.patch(f"{API}/admin/users/{root.id}", json={"is_admin": False}).status_code == 200
    assert_problem(admin_key.get(f"{API}/admin/users"), 403, "admin_required")


def test_keys_of_disabled_users_are_refused(accounts) -> None:
    alice, root = accounts.make(), accounts.make(admin=True)
    program = alice.bearer()
    assert root.client.patch(f"{API}/admin/users/{alice.id}", json={"is_active": False}).status_code == 200
    assert_problem(program.get(f"{API}/me"), 401, "invalid_api_key")


def test_keys_with_a_rate_limit_answer_429_past_it(accounts, container) -> None:
    alice = accounts.make()
    program = alice.bearer(rate_limit_per_minute=2)
    assert program.get(f"{API}/me").status_code == 200
    assert program.get(f"{API}/me").status_code == 200
    limited = program.get(f"{API}/me")
    assert_problem(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert alice.client.get(KEYS).json()["items"][0]["usage_count"] == 2
    shift_rate_windows(container, 60)
    assert program.get(f"{API}/me").status_code == 200
