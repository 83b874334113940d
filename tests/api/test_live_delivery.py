"""Live events arrive because of notifications, not because the stream polls.

The studio runs for real (uvicorn on a port, the in-process worker) with every timer that would make
a stream re-read the events table on its own (poll, heartbeat, maximum length) set to ten minutes.
A generation created after the stream opened must still stream to its end within the overall bound:
only the commit notifications can have woken the stream. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from imagestudio.db import Database
from tests.web.live import PASSWORD, running, studio_settings

NEVER = 600.0  # seconds: longer than any bound below, so polling cannot be what delivers
OVERALL_SECONDS = 45.0


def _sign_in(base_url: str, email: str) -> httpx.Client:
    client = httpx.Client(
        base_url=base_url,
        headers={"Origin": base_url, "X-Requested-With": "fetch"},
        timeout=httpx.Timeout(OVERALL_SECONDS),
    )
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return client


def test_a_stream_follows_a_generation_on_notifications_alone(db: Database, migrated_url: str, tmp_path: Path) -> None:
    settings = studio_settings(
        migrated_url,
        tmp_path / "data",
        sse_poll_seconds=NEVER,
        sse_heartbeat_seconds=NEVER,
        sse_max_seconds=NEVER,
    )
    with running(settings) as server:
        client = _sign_in(server.base_url, server.create_user())
        try:
            deadline = time.monotonic() + OVERALL_SECONDS
            with client.stream("GET", "/api/v1/events") as stream:
                assert stream.status_code == 200, stream.read()
                lines = stream.iter_lines()
                assert next(lines).startswith("retry:")
                created = client.post("/api/v1/generations", json={"prompt": "a kite", "width": 64, "height": 64})
                assert created.status_code == 201, created.text
                events: list[dict] = []
                for line in lines:
                    assert time.monotonic() < deadline, f"events stopped arriving: {events}"
                    if line.startswith("data: "):
                        events.append(json.loads(line.removeprefix("data: ")))
                        if events[-1]["type"] == "succeeded":
                            break
        finally:
            client.close()
    types = [event["type"] for event in events]
    assert types[0] == "queued" and "started" in types and types[-1] == "succeeded", types
    assert {event["generation_id"] for event in events} == {created.json()["id"]}
