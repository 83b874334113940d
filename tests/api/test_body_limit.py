"""Request bodies other than uploads are capped: past IMAGESTUDIO_MAX_JSON_BODY_BYTES the answer is
413 problem+json before the rest is read, whatever the Content-Length says (honest, lying or absent)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anyio
from sqlalchemy import func, select

from imagestudio.kit.body_limit import BodyLimitMiddleware
from imagestudio.models import Generation, Project
from tests.api.helpers import API, assert_problem, image_bytes, upload

LIMIT = 64 * 1024


def _count(container, model) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(model))


def _padded(body: dict, size: int) -> bytes:
    """Valid JSON of `size` bytes: the object padded with whitespace, as the defect report had it."""
    data = json.dumps(body).encode()
    return data[:-1] + b" " * (size - len(data)) + b"}"


def test_a_whitespace_padded_body_past_the_limit_is_refused_and_changes_nothing(accounts, container) -> None:
    container.settings.max_json_body_bytes = LIMIT
    client = accounts.make().client
    headers = {"Content-Type": "application/json"}
    big = _padded({"prompt": "a kite", "width": 64, "height": 64}, 10 * 1024 * 1024)
    body = assert_problem(client.post(f"{API}/generations", content=big, headers=headers), 413, "content_too_large")
    assert str(LIMIT) in body["detail"]
    # A Content-Length that claims a small body, and a chunked body that gives none, fare no better.
    lying = client.post(f"{API}/generations", content=big, headers={**headers, "Content-Length": "100"})
    assert_problem(lying, 413, "content_too_large")

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 16 * 1024):
            yield big[start : start + 16 * 1024]

    chunked = client.post(f"{API}/projects", content=chunks(), headers=headers)
    assert "content-length" not in chunked.request.headers
    assert_problem(chunked, 413, "content_too_large")
    assert _count(container, Generation) == 0 and _count(container, Project) == 0
    # Just under the limit is a normal request.
    fits = client.post(f"{API}/projects", content=_padded({"name": "Kites"}, LIMIT), headers=headers)
    assert fits.status_code == 201, fits.text


def test_the_default_limit_is_one_mebibyte(accounts, container) -> None:
    client = accounts.make().client
    headers = {"Content-Type": "application/json"}
    assert container.settings.max_json_body_bytes == 1024 * 1024
    over = client.post(f"{API}/projects", content=_padded({"name": "x"}, 1024 * 1024 + 1), headers=headers)
    assert_problem(over, 413, "content_too_large")


def test_reading_stops_at_the_limit() -> None:
    """At the ASGI level: the application never runs and the body is not read past the limit."""
    received: list[int] = []
    sent: list[dict] = []
    chunk = b" " * 1000

    async def receive() -> dict:
        received.append(len(chunk))
        return {"type": "http.request", "body": chunk, "more_body": True}  # an endless body

    async def send(message: dict) -> None:
        sent.append(message)

    async def application(scope, receive, send) -> None:
        raise AssertionError("the application must not run")

    middleware = BodyLimitMiddleware(application, limit=lambda scope: 4500)
    scope = {"type": "http", "method": "POST", "path": "/api/v1/projects", "headers": []}
    anyio.run(middleware, scope, receive, send)
    assert len(received) == 5  # 5000 bytes read: the first chunk past 4500, and nothing after it
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["code"] == "content_too_large"


def test_uploads_keep_their_own_limit(accounts, container) -> None:
    container.settings.max_json_body_bytes = 1024
    response = upload(accounts.make().client, image_bytes((64, 64)) + b"\0" * 4096, filename="kite.png")
    assert response.status_code == 201, response.text
