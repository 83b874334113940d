"""Helpers for API tests: clients that behave like our pages or like programs, accounts, keys.

def test_something(app, accounts):
    alice = accounts.make()                      # signed-in account, alice.client sends cookie + CSRF headers
    key = alice.api_key(scopes=["read"])         # a full API key of alice's
    program = bearer_client(app, key)            # a client that authenticates with that key
    assert_problem(program.post(...), 403, "insufficient_scope")
"""

from __future__ import annotations

import asyncio
import io
import itertools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from imagestudio.accounts import service
from imagestudio.container import Container
from imagestudio.models import AuthSession, RateCounter, User

BASE_URL = "http://testserver"
HTTPS_BASE_URL = "https://testserver"
PASSWORD = "correct horse battery staple"
API = "/api/v1"
PROBLEM_MEDIA_TYPE = "application/problem+json"

_serial = itertools.count(1)


def unique_email(stem: str = "user") -> str:
    return f"{stem}{next(_serial)}@example.test"


def browser_client(app: FastAPI, *, base_url: str = BASE_URL, **options: Any) -> TestClient:
    """A client like our own pages: same-origin Origin and X-Requested-With on every request."""
    headers = {"Origin": base_url, "X-Requested-With": "fetch", "Sec-Fetch-Site": "same-origin"}
    headers.update(options.pop("headers", {}))
    return TestClient(app, base_url=base_url, headers=headers, **options)


def bearer_client(app: FastAPI, key: str, *, base_url: str = BASE_URL, **options: Any) -> TestClient:
    """A client like a program: the API key in Authorization, no cookies, no browser headers."""
    return TestClient(app, base_url=base_url, headers={"Authorization": f"Bearer {key}"}, **options)


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    """Assert an RFC 9457 problem answer with this status (and code); answers its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE), response.headers["content-type"]
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"] == f"urn:imagestudio:problem:{body['code']}"
    if code is not None:
        assert body["code"] == code, body
    return body


def error_fields(response: httpx.Response) -> set[str]:
    return {item["field"] for item in response.json().get("errors", [])}


def create_user(
    container: Container, email: str | None = None, password: str = PASSWORD, *, admin: bool = False
) -> User:
    """A user written straight to the database (as `imagestudio users create` does)."""
    with container.db.writing() as db:
        return service.create_user(
            db,
            container.settings,
            email=email or unique_email(),
            password=password,
            display_name="Test",
            is_admin=admin,
        )


def log_in(app: FastAPI, email: str, password: str = PASSWORD, *, base_url: str = BASE_URL) -> TestClient:
    """A browser client signed in as email."""
    client = browser_client(app, base_url=base_url)
    response = client.post(f"{API}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return client


def make_api_key(client: TestClient, scopes: Iterable[str] = ("read", "generate"), **fields: Any) -> str:
    """Create an API key with a signed-in browser client; answers the full key."""
    response = client.post(f"{API}/api-keys", json={"name": "test key", "scopes": list(scopes), **fields})
    assert response.status_code == 201, response.text
    return response.json()["key"]


@dataclass
class Account:
    app: FastAPI
    id: str
    email: str
    password: str
    is_admin: bool
    client: TestClient

    def api_key(self, scopes: Iterable[str] = ("read", "generate"), **fields: Any) -> str:
        return make_api_key(self.client, scopes, **fields)

    def bearer(self, scopes: Iterable[str] = ("read", "generate"), **fields: Any) -> TestClient:
        return bearer_client(self.app, self.api_key(scopes, **fields))


@dataclass
class Accounts:
    """Makes signed-in accounts for one test (see the `accounts` fixture)."""

    app: FastAPI
    container: Container
    made: list[Account] = field(default_factory=list)

    def make(self, *, admin: bool = False, email: str | None = None, password: str = PASSWORD) -> Account:
        user = create_user(self.container, email, password, admin=admin)
        account = Account(self.app, str(user.id), user.email, password, admin, log_in(self.app, user.email, password))
        self.made.append(account)
        return account


def login_count(container: Container, user_id: str | uuid.UUID) -> int:
    with container.db.reading() as db:
        return len(db.scalars(select(AuthSession.id).where(AuthSession.user_id == uuid.UUID(str(user_id)))).all())


def shift_rate_windows(container: Container, seconds: int) -> None:
    """Let `seconds` pass for every rate counter (login throttling, API key rates) by moving its window back."""
    with container.db.writing() as db:
        for counter in db.scalars(select(RateCounter)):
            counter.window_start -= timedelta(seconds=seconds)


def routes_of(app: FastAPI) -> dict[str, Any]:
    """Every route of the app as {"METHOD /path": route}; mounts appear as "MOUNT /path"."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI without lazily included routers: app.routes is already flat.
        contexts: Iterable[Any] = app.routes
    else:
        contexts = iter_route_contexts(app.routes)
    found: dict[str, Any] = {}
    for route in contexts:
        methods = getattr(route, "methods", None)
        if methods is None:
            found[f"MOUNT {route.path}"] = route
            continue
        for method in sorted(set(methods) - {"HEAD"}):
            found[f"{method} {route.path}"] = route
    return found


def image_bytes(
    size: tuple[int, int] = (48, 32), color: tuple[int, int, int] = (200, 60, 30), image_format: str = "PNG", **save
) -> bytes:
    """A small real image file (a gradient, so thumbnails and re-encodes have something to do)."""
    image = Image.new("RGB", size, color)
    for x in range(size[0]):
        image.putpixel((x, 0), (x * 5 % 256, 90, 160))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **save)
    return buffer.getvalue()


def upload(client: TestClient, data: bytes | None = None, purpose: str = "init", filename: str = "photo.png", **fields):
    """POST /assets as a browser's FormData would."""
    form = {"purpose": purpose, **{name: str(value) for name, value in fields.items()}}
    content = image_bytes() if data is None else data
    return client.post(f"{API}/assets", files={"file": (filename, content, "image/png")}, data=form)


def run_queue(container: Container, seconds: float = 30.0, **worker_options: Any) -> None:
    """Run every queued generation to its end with a real worker (the built-in renderer), then stop.
    `worker_options` go to the Worker (e.g. progress_interval=0 to write every progress step)."""
    from imagestudio.generations.worker import Worker

    async def run() -> None:
        worker = Worker(
            db=container.db,
            storage=container.storage,
            registry=container.registry,
            language=container.language,
            settings=container.settings,
            hub=container.hub,
            concurrency=2,
            poll_interval=0.05,
            **worker_options,
        )
        await worker.start()
        try:
            await asyncio.wait_for(worker.wait_idle(), seconds)
        finally:
            await worker.stop(grace=2.0)

    asyncio.run(run())
