"""One error shape everywhere (problem+json with a stable code), security headers on every answer."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text

from imagestudio.db import Database
from imagestudio.kit.errors import ApiError, FieldError, install_error_handlers
from imagestudio.kit.headers import SECURITY_HEADERS
from tests import factories
from tests.api.helpers import API, BASE_URL, assert_problem, browser_client


def _assert_security_headers(response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.headers)


def test_unknown_routes_are_404_problems(client) -> None:
    body = assert_problem(client.get(f"{API}/no-such-thing"), 404, "not_found")
    assert body["title"] == "Not Found"
    assert_problem(client.get("/nowhere"), 404, "not_found")


def test_wrong_methods_are_405_problems(client) -> None:
    response = client.put(f"{API}/me")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET, PATCH"
    # Allow names every method of the path, though each is a route of its own.
    session = f"{API}/sessions/e3e70682-c209-1cac-a29f-6fbed82c07cd"
    assert client.options(session).headers["allow"] == "DELETE, GET, PATCH"
    assert client.options(f"{API}/sessions").headers["allow"] == "GET, POST"


def test_validation_errors_name_their_fields(accounts) -> None:
    alice = accounts.make()
    response = alice.client.patch(
        f"{API}/me/settings", json={"default_params": {"steps": "many"}, "theme": "neon", "extra": 1}
    )
    body = assert_problem(response, 422, "validation_failed")
    fields = {item["field"]: item["message"] for item in body["errors"]}
    assert set(fields) == {"default_params.steps", "theme", "extra"}
    assert fields["extra"] == "Unknown field."
    assert all(isinstance(message, str) and message for message in fields.values())
    query = alice.client.get(f"{API}/projects", params={"limit": 0})
    assert [item["field"] for item in assert_problem(query, 422)["errors"]] == ["query.limit"]
    path = alice.client.get(f"{API}/projects/not-a-uuid")
    assert [item["field"] for item in assert_problem(path, 422)["errors"]] == ["path.project_id"]


def test_malformed_json_is_a_400_problem(accounts) -> None:
    alice = accounts.make()
    for payload in (b'{"name": ', b"\xff\xfe", b"{'name': 'single quotes'}"):
        response = alice.client.post(f"{API}/projects", content=payload, headers={"Content-Type": "application/json"})
        assert_problem(response, 400, "malformed_body")
    assert alice.client.get(f"{API}/projects").json()["items"] == []


def test_a_body_that_is_not_an_object_is_refused(accounts) -> None:
    alice = accounts.make()
    for payload in ([], "name", 3, None):
        assert_problem(alice.client.post(f"{API}/projects", json=payload), 422, "validation_failed")


def test_api_errors_keep_their_status_code_fields_and_headers(app) -> None:
    @app.get("/boom/api-error")
    def raise_api_error() -> None:
        raise ApiError(418, "teapot", "Short and stout.", fields=[FieldError("spout", "Tipped.")], headers={"X-A": "1"})

    response = browser_client(app).get("/boom/api-error")
    body = assert_problem(response, 418, "teapot")
    assert body["detail"] == "Short and stout." and body["errors"] == [{"field": "spout", "message": "Tipped."}]
    assert response.headers["X-A"] == "1"
    _assert_security_headers(response)


def test_unexpected_errors_are_logged_but_never_shown(app, caplog) -> None:
    @app.get("/boom/crash")
    def crash() -> None:
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")

    client = TestClient(app, base_url=BASE_URL, raise_server_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="imagestudio.kit.errors"):
        response = client.get("/boom/crash")
    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text and "RuntimeError" not in response.text and "Traceback" not in response.text
    assert body["detail"]
    _assert_security_headers(response)
    assert any("hunter2" in (record.exc_text or "") or record.exc_info for record in caplog.records)
    assert any("/boom/crash" in record.getMessage() for record in caplog.records)


def test_security_headers_are_on_every_answer(app, accounts) -> None:
    alice = accounts.make()
    anonymous = browser_client(app)
    for response in (
        alice.client.get(f"{API}/me"),
        anonymous.get(f"{API}/me"),
        anonymous.get("/nowhere"),
        anonymous.get("/healthz"),
        anonymous.get("/api/v1/openapi.json"),
        alice.client.post(f"{API}/projects", json={}),
    ):
        _assert_security_headers(response)


def test_the_api_describes_itself(client) -> None:
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    for path in ("/api/v1/auth/login", "/api/v1/me", "/api/v1/api-keys/{key_id}", "/api/v1/projects/{project_id}"):
        assert path in paths
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text


# A lock held by another session: SQLite has one writer at a time.
@pytest.mark.postgresql_only
def test_a_busy_database_is_a_503_problem_that_invites_a_retry(db: Database) -> None:
    with db.writing() as session:
        user_id = factories.make_user(session).id
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/rename")
    def rename() -> dict:
        with db.writing() as session:
            session.execute(text("SET LOCAL lock_timeout = '200ms'"))
            session.execute(text("UPDATE users SET display_name = 'renamed' WHERE id = :id"), {"id": user_id})
        return {}

    holder = db.engine.connect()
    try:
        holder.begin()
        holder.execute(text("SELECT 1 FROM users WHERE id = :id FOR UPDATE"), {"id": user_id})
        response = TestClient(app).post("/rename")
    finally:
        holder.rollback()
        holder.close()
    assert_problem(response, 503, "database_busy")
    assert response.headers["retry-after"] == "2"
    _assert_security_headers(response)
    assert TestClient(app).post("/rename").status_code == 200


def test_what_the_document_calls_invalid_is_refused(accounts) -> None:
    """Lax parsing must not accept what the OpenAPI document rules out (schemathesis checks both ways)."""
    client = accounts.make().client
    response = client.get(f"{API}/generations", params={"created_before": "0.5"})
    assert error_fields_of(assert_problem(response, 422, "validation_failed")) == {"query.created_before"}
    assert client.get(f"{API}/generations", params={"created_before": "2030-01-01T00:00:00Z"}).status_code == 200
    session = client.post(f"{API}/sessions", json={}).json()
    response = client.patch(f"{API}/sessions/{session['id']}", json={"archived": 0})
    assert error_fields_of(assert_problem(response, 422, "validation_failed")) == {"archived"}
    assert client.get(f"{API}/sessions/{session['id']}").json()["archived"] is False


def error_fields_of(body: dict) -> set[str]:
    return {item["field"] for item in body["errors"]}
