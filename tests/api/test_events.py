"""Live events over SSE: replay from Last-Event-ID or ?after=, live delivery from a worker, heartbeats,
ends, and streams that only ever carry the caller's own generations."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

from fastapi.testclient import TestClient

from tests.api.helpers import API, assert_problem


@dataclass
class Event:
    id: int
    type: str
    data: dict


def read_stream(response, until: str | None = None, limit_seconds: float = 20.0) -> tuple[list[Event], list[str]]:
    """Events and comment lines of an SSE response, up to an event of type `until` (or the end)."""
    events: list[Event] = []
    comments: list[str] = []
    fields: dict[str, str] = {}
    deadline = time.monotonic() + limit_seconds
    for line in response.iter_lines():
        assert time.monotonic() < deadline, "stream ran too long"
        if line.startswith(":"):
            comments.append(line)
        elif line == "":
            if "data" in fields:
                event = Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                assert event.data["id"] == event.id and event.data["type"] == event.type
                events.append(event)
                if event.type == until:
                    break
            fields = {}
        else:
            name, _, value = line.partition(": ")
            fields[name] = value
    return events, comments


def _stream(client: TestClient, path: str, **options) -> tuple[int, list[Event], list[str]]:
    with client.stream("GET", path, **options) as response:
        if response.status_code != 200:
            return response.status_code, [], []
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-cache"
        events, comments = read_stream(response)
        return 200, events, comments


def _canceled_generation(client: TestClient) -> str:
    generation = client.post(f"{API}/generations", json={"prompt": "a kite", "width": 64, "height": 64}).json()
    assert client.post(f"{API}/generations/{generation['id']}/cancel").json()["status"] == "canceled"
    return generation["id"]


def test_generation_stream_replays_from_last_event_id_or_after_and_ends_when_final(accounts) -> None:
    owner, other = accounts.make(), accounts.make()
    client = owner.client
    generation_id = _canceled_generation(client)
    path = f"{API}/generations/{generation_id}/events"

    status, events, _ = _stream(client, path)
    assert status == 200 and [e.type for e in events] == ["queued", "canceled"]
    queued, canceled = events
    assert queued.id < canceled.id and [e.data["sequence"] for e in events] == [1, 2]
    assert queued.data["generation_id"] == generation_id and queued.data["payload"]["provider"] == "builtin"

    assert _stream(client, path, headers={"Last-Event-ID": str(queued.id)})[1] == [canceled]
    assert _stream(client, path, params={"after": queued.id})[1] == [canceled]
    # The header (what a reconnecting browser sends) wins over the query.
    assert _stream(client, f"{path}?after={canceled.id}", headers={"Last-Event-ID": str(queued.id)})[1] == [canceled]
    # Final and nothing left to send: 204 tells EventSource not to reconnect.
    assert _stream(client, path, headers={"Last-Event-ID": str(canceled.id)})[0] == 204

    for headers, params, status, code in (
        ({"Last-Event-ID": "soon"}, {}, 400, "invalid_last_event_id"),
        ({"Last-Event-ID": "9" * 30}, {}, 400, "invalid_last_event_id"),
        ({}, {"after": -1}, 422, "validation_failed"),
        ({}, {"after": "x"}, 422, "validation_failed"),
    ):
        assert_problem(client.get(path, headers=headers, params=params), status, code)
    assert_problem(other.client.get(path), 404, "not_found")
    assert_problem(client.get(f"{API}/generations/{uuid.uuid4()}/events"), 404, "not_found")


def test_session_stream_delivers_a_worker_s_events_live_and_resumes(app, accounts, container) -> None:
    container.settings.sse_max_seconds = 30
    client = accounts.make().client
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    path = f"{API}/sessions/{session_id}/events"
    # Entering the context runs the app's lifespan: an in-process worker (and, on PostgreSQL, the
    # notification listener) start, as under `imagestudio serve`.
    with TestClient(app), client.stream("GET", path) as response:
        assert response.status_code == 200
        turn = client.post(
            f"{API}/sessions/{session_id}/messages", json={"content": "a harbour", "width": 64, "height": 64}
        ).json()
        events, _ = read_stream(response, until="succeeded")
    types = [event.type for event in events]
    assert types[:2] == ["queued", "started"] and types[-2:] == ["output_stored", "succeeded"], types
    assert [event.id for event in events] == sorted(event.id for event in events)
    assert {event.data["generation_id"] for event in events} == {turn["generation_id"]}
    assert [event.data["sequence"] for event in events] == list(range(1, len(events) + 1))
    asset_id = events[-2].data["payload"]["asset_id"]
    assert client.get(f"{API}/assets/{asset_id}").json()["generation_id"] == turn["generation_id"]

    # A reconnect with Last-Event-ID gets exactly what came after it.
    container.settings.sse_max_seconds = 0.5
    started = events[1]
    _, replay, _ = _stream(client, path, headers={"Last-Event-ID": str(started.id)})
    assert replay == events[2:]


def test_idle_streams_send_heartbeats_and_end_after_the_maximum(accounts, container) -> None:
    container.settings.sse_max_seconds = 0.7
    container.settings.sse_heartbeat_seconds = 0.1
    client = accounts.make().client
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    started = time.monotonic()
    status, events, comments = _stream(client, f"{API}/sessions/{session_id}/events")
    # How many heartbeats fit depends on the machine; that there is one, and that the stream ends
    # no sooner than its maximum (and well within the overall bound), does not.
    assert status == 200 and events == []
    assert comments and set(comments) == {": keep-alive"}
    assert container.settings.sse_max_seconds <= time.monotonic() - started < 10


def test_a_user_stream_carries_only_that_user_s_generations(accounts, container) -> None:
    container.settings.sse_max_seconds = 0.3
    alice, bob = accounts.make(), accounts.make()
    mine = {_canceled_generation(alice.client) for _ in range(2)}
    theirs = _canceled_generation(bob.client)
    status, events, _ = _stream(alice.client, f"{API}/events")
    assert status == 200 and {event.data["generation_id"] for event in events} == mine
    assert len(events) == 4 and theirs not in json.dumps([event.data for event in events])
    _, after_first, _ = _stream(alice.client, f"{API}/events", params={"after": events[0].id})
    assert after_first == events[1:]
