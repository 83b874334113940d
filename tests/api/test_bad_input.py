"""Bad input on every endpoint that takes a body: malformed JSON, wrong types, oversized strings, unknown fields.

Each answer is a 4xx problem and the database is exactly as it was; then the valid body succeeds,
which shows that each refusal was about the one thing that was wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from imagestudio.accounts import provider_keys, tokens
from imagestudio.container import Container
from imagestudio.models import TokenPurpose, metadata
from imagestudio.models.types import utcnow
from tests.api.helpers import (
    API,
    PASSWORD,
    Accounts,
    assert_problem,
    browser_client,
    create_user,
    image_bytes,
    routes_of,
    run_queue,
    upload,
)

OVERSIZED = "x" * 100_000


@dataclass(frozen=True)
class Target:
    client: TestClient
    path: str
    body: dict


@dataclass(frozen=True)
class BodyRoute:
    method: str
    # Builds the caller, the concrete path and a valid body on a fresh database.
    prepare: Callable[[Accounts], Target]
    ok_status: int = 200


def _anonymous(accounts: Accounts, path: str, body: dict, *, with_admin: bool = True) -> Target:
    if with_admin:
        create_user(accounts.container, admin=True)
    return Target(browser_client(accounts.app), path, body)


def _as_user(accounts: Accounts, path: str, body: dict) -> Target:
    return Target(accounts.make().client, path, body)


def _project(accounts: Accounts) -> Target:
    alice = accounts.make()
    project_id = alice.client.post(f"{API}/projects", json={"name": "p"}).json()["id"]
    body = {"name": "renamed", "description": "d", "status": "draft", "settings": PROJECT_SETTINGS, "is_public": True}
    return Target(alice.client, f"{API}/projects/{project_id}", body)


PROJECT_SETTINGS = {
    "provider": "builtin",
    "model": "solid",
    "width": 96,
    "height": 64,
    "params": {"steps": 7},
    "prompt_options": {"style": "ink"},
}


def _admin_patch(accounts: Accounts) -> Target:
    root, alice = accounts.make(admin=True), accounts.make()
    body = {
        "is_active": True,
        "is_admin": False,
        "daily_image_quota": 10,
        "rate_per_minute": 3,
        "max_running": 2,
        "monthly_budget": "12.5",
    }
    return Target(root.client, f"{API}/admin/users/{alice.id}", body)


def _login(accounts: Accounts) -> Target:
    user = create_user(accounts.container)
    return Target(browser_client(accounts.app), f"{API}/auth/login", {"email": user.email, "password": PASSWORD})


def _in_session(accounts: Accounts, suffix: str, body: dict) -> Target:
    alice = accounts.make()
    session_id = alice.client.post(f"{API}/sessions", json={}).json()["id"]
    return Target(alice.client, f"{API}/sessions/{session_id}{suffix}", body)


def _with_an_image(accounts: Accounts, body: Callable[[str, str], tuple[str, dict]]) -> Target:
    """A user with a session holding one generated image; body(session_id, asset_id) -> (path, body)."""
    alice = accounts.make()
    session_id = alice.client.post(f"{API}/sessions", json={}).json()["id"]
    turn = {"content": "a fox", "mode": "fresh", "width": 64, "height": 64}
    generation_id = alice.client.post(f"{API}/sessions/{session_id}/messages", json=turn).json()["generation_id"]
    run_queue(accounts.container)
    asset_id = alice.client.get(f"{API}/generations/{generation_id}").json()["outputs"][0]["id"]
    path, valid = body(session_id, asset_id)
    return Target(alice.client, path, valid)


def _mailing(accounts: Accounts) -> None:
    """Let the app queue mail (nothing sends it in these tests)."""
    container = accounts.container
    container.settings = container.settings.model_copy(update={"smtp_url": SecretStr("smtp://127.0.0.1:25")})


def _with_link(accounts: Accounts, purpose: TokenPurpose, path: str, body: dict) -> Target:
    """An anonymous caller holding a fresh link of `purpose` for a new account's address."""
    user = create_user(accounts.container, admin=True)
    with accounts.container.db.writing() as db:
        user_id = None if purpose is TokenPurpose.invitation else user.id
        email = "guest@example.test" if user_id is None else user.email
        _, token = tokens.issue(db, purpose, email=email, lifetime=timedelta(hours=1), now=utcnow(), user_id=user_id)
    return Target(browser_client(accounts.app), path, {"token": token, **body})


def _email_change(accounts: Accounts) -> Target:
    _mailing(accounts)
    return _as_user(accounts, f"{API}/me/email", {"email": "moved@example.test", "password": PASSWORD})


def _upload_link(accounts: Accounts) -> Target:
    alice = accounts.make()
    asset_id = upload(alice.client, image_bytes()).json()["id"]
    return Target(alice.client, f"{API}/assets/{asset_id}/links", {"expires_in": 600})


def _caption(accounts: Accounts) -> Target:
    alice = accounts.make()
    asset_id = upload(alice.client, image_bytes()).json()["id"]
    return Target(alice.client, f"{API}/assets/{asset_id}/captions", {"style": "detailed", "provider": "builtin"})


def _own_key(accounts: Accounts) -> Target:
    with accounts.container.db.writing() as db:
        provider_keys.set_policy(db, "openai", allow_user_keys=True, studio_key_fallback=None)
    return _as_user(accounts, f"{API}/me/provider-keys/openai", {"api_key": "sk-valid-own-key-1234"})


def _as_admin(accounts: Accounts, path: str, body: dict) -> Target:
    return Target(accounts.make(admin=True).client, path, body)


NEW_ACCOUNT = {"email": "new@example.test", "password": PASSWORD, "display_name": "New"}
GENERATION_FIELDS = {
    "width": 64,
    "height": 64,
    "num_images": 1,
    "negative_prompt": "blur",
    "params": {"steps": 20, "guidance": 5.0, "seed": 2},
    "prompt_options": {"style": "ink", "custom": True},
}

BODY_ROUTES: dict[str, BodyRoute] = {
    "POST /api/v1/auth/setup": BodyRoute(
        "POST", lambda a: _anonymous(a, f"{API}/auth/setup", NEW_ACCOUNT, with_admin=False), 201
    ),
    "POST /api/v1/auth/signup": BodyRoute("POST", lambda a: _anonymous(a, f"{API}/auth/signup", NEW_ACCOUNT), 201),
    "POST /api/v1/auth/login": BodyRoute("POST", _login),
    "PATCH /api/v1/me": BodyRoute("PATCH", lambda a: _as_user(a, f"{API}/me", {"display_name": "Al"})),
    "POST /api/v1/me/password": BodyRoute(
        "POST",
        lambda a: _as_user(a, f"{API}/me/password", {"current_password": PASSWORD, "new_password": "n" * 12}),
        204,
    ),
    "PATCH /api/v1/me/settings": BodyRoute(
        "PATCH",
        lambda a: _as_user(
            a,
            f"{API}/me/settings",
            {
                "theme": "dark",
                "language": "fr",
                "timezone": "Europe/Paris",
                "default_provider": "builtin",
                "default_model": "m",
                "default_params": {"steps": 20, "guidance": 7.0, "strength": 0.5, "scheduler": "euler", "seed": 1},
                "notifications": {"done": True},
            },
        ),
    ),
    "POST /api/v1/api-keys": BodyRoute(
        "POST",
        lambda a: _as_user(
            a,
            f"{API}/api-keys",
            {"name": "k", "scopes": ["read"], "expires_at": "2999-01-01T00:00:00Z", "rate_limit_per_minute": 5},
        ),
        201,
    ),
    "POST /api/v1/admin/users": BodyRoute(
        "POST",
        lambda a: Target(a.make(admin=True).client, f"{API}/admin/users", {**NEW_ACCOUNT, "is_admin": False}),
        201,
    ),
    "PATCH /api/v1/admin/users/{user_id}": BodyRoute("PATCH", _admin_patch),
    "POST /api/v1/admin/invitations": BodyRoute(
        "POST",
        lambda a: Target(a.make(admin=True).client, f"{API}/admin/invitations", {"email": "g@example.test"}),
        201,
    ),
    "POST /api/v1/auth/invitations/accept": BodyRoute(
        "POST",
        lambda a: _with_link(
            a, TokenPurpose.invitation, f"{API}/auth/invitations/accept", {"password": PASSWORD, "display_name": "G"}
        ),
        201,
    ),
    "POST /api/v1/auth/password-reset": BodyRoute(
        "POST", lambda a: _anonymous(a, f"{API}/auth/password-reset", {"email": "who@example.test"}), 202
    ),
    "POST /api/v1/auth/password-reset/confirm": BodyRoute(
        "POST",
        lambda a: _with_link(
            a, TokenPurpose.password_reset, f"{API}/auth/password-reset/confirm", {"password": PASSWORD}
        ),
    ),
    "POST /api/v1/auth/verify-email": BodyRoute(
        "POST", lambda a: _with_link(a, TokenPurpose.email_verification, f"{API}/auth/verify-email", {})
    ),
    "POST /api/v1/me/email": BodyRoute("POST", _email_change, 202),
    "POST /api/v1/projects": BodyRoute(
        "POST",
        lambda a: _as_user(
            a,
            f"{API}/projects",
            {"name": "p", "description": "d", "status": "active", "settings": PROJECT_SETTINGS, "is_public": True},
        ),
        201,
    ),
    "PATCH /api/v1/projects/{project_id}": BodyRoute("PATCH", _project),
    "POST /api/v1/sessions": BodyRoute(
        "POST", lambda a: _as_user(a, f"{API}/sessions", {"title": "t", "context": "brand colours: teal"}), 201
    ),
    "PATCH /api/v1/sessions/{session_id}": BodyRoute(
        "PATCH",
        lambda a: _with_an_image(
            a,
            lambda session_id, asset_id: (
                f"{API}/sessions/{session_id}",
                {"title": "renamed", "archived": True, "context": "audience: kids", "thumbnail_asset_id": asset_id},
            ),
        ),
    ),
    "PATCH /api/v1/assets/{asset_id}": BodyRoute(
        "PATCH", lambda a: _with_an_image(a, lambda _, asset_id: (f"{API}/assets/{asset_id}", {"starred": True}))
    ),
    "POST /api/v1/sessions/{session_id}/messages": BodyRoute(
        "POST", lambda a: _in_session(a, "/messages", {"content": "a fox", "mode": "fresh", **GENERATION_FIELDS}), 201
    ),
    "POST /api/v1/generations": BodyRoute(
        "POST",
        lambda a: _as_user(a, f"{API}/generations", {"prompt": "a fox", "type": "text2img", **GENERATION_FIELDS}),
        201,
    ),
    "POST /api/v1/assets/{asset_id}/links": BodyRoute("POST", _upload_link, 201),
    "POST /api/v1/assets/{asset_id}/captions": BodyRoute("POST", _caption, 202),
    "PUT /api/v1/me/provider-keys/{provider}": BodyRoute("PUT", _own_key),
    "PATCH /api/v1/admin/provider-keys/{provider}": BodyRoute(
        "PATCH",
        lambda a: _as_admin(
            a, f"{API}/admin/provider-keys/openai", {"allow_user_keys": True, "studio_key_fallback": False}
        ),
    ),
    "PUT /api/v1/admin/budget": BodyRoute(
        "PUT", lambda a: _as_admin(a, f"{API}/admin/budget", {"monthly_budget": "10.5"})
    ),
}
# Routes that answer errors in another shape than problem+json, with the test that covers their
# bad bodies instead.
OTHER_SHAPES = {"POST /v1/images/generations": "tests/api/test_openai_compat.py::test_raw_bad_bodies"}


def _wrong_type(value: Any) -> Any:
    if isinstance(value, dict):
        return ["not", "an", "object"]
    if isinstance(value, str):
        return 12345
    return {"not": "a scalar"}


def _bad_bodies(body: dict) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what is wrong, keyword arguments for the request)."""
    json_headers = {"Content-Type": "application/json"}
    yield "malformed JSON", {"content": b'{"truncated": ', "headers": json_headers}
    yield "not an object", {"json": [body]}
    yield "unknown field", {"json": {**body, "surprise": 1}}
    for key, value in body.items():
        yield f"{key} of the wrong type", {"json": {**body, key: _wrong_type(value)}}
        if isinstance(value, str):
            yield f"{key} oversized", {"json": {**body, key: OVERSIZED}}
        if isinstance(value, dict):
            for inner_key, inner_value in value.items():
                yield (
                    f"{key}.{inner_key} of the wrong type",
                    {"json": {**body, key: {inner_key: _wrong_type(inner_value)}}},
                )


def _snapshot(container: Container) -> dict[str, list]:
    with container.db.reading() as db:
        return {
            table.name: sorted(
                (tuple(str(value) for value in row) for row in db.execute(select(table)).all()), key=repr
            )
            for table in metadata.sorted_tables
        }


def test_every_json_body_route_is_covered(app) -> None:
    with_bodies = {
        key
        for key, route in routes_of(app).items()
        if getattr(route, "body_field", None) is not None and getattr(route, "endpoint", None) is not None
    }
    assert with_bodies == set(BODY_ROUTES) | set(OTHER_SHAPES)


# Bodies of another shape on a route listed above (a chat turn that asks for a reply).
VARIANTS = {
    "POST /api/v1/sessions/{session_id}/messages (mode reply)": BodyRoute(
        "POST",
        lambda a: _in_session(
            a, "/messages", {"content": "what would make it calmer?", "mode": "reply", "provider": "builtin"}
        ),
        201,
    ),
}


@pytest.mark.parametrize("key", sorted(BODY_ROUTES) + sorted(VARIANTS))
def test_bad_bodies_change_nothing(accounts: Accounts, container: Container, key: str) -> None:
    route = BODY_ROUTES.get(key) or VARIANTS[key]
    target = route.prepare(accounts)
    before = _snapshot(container)
    for problem, request in _bad_bodies(target.body):
        response = target.client.request(route.method, target.path, **request)
        assert response.status_code in (400, 422), (problem, response.status_code, response.text)
        assert_problem(response, response.status_code, "malformed_body" if response.status_code == 400 else None)
        assert _snapshot(container) == before, f"{key}: {problem} changed the database"
    response = target.client.request(route.method, target.path, json=target.body)
    assert response.status_code == route.ok_status, response.text
