"""The session page opens its stream after the detail's `last_event_id`: a long session's history is
not sent again, what happens afterwards streams live, an event committed while the detail was being
read (after its last_event_id, before its steps) still comes, even if the detail shows it too, and
an answer still being written is replayed from its start (its text so far is only in its events)."""

from __future__ import annotations

import re
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import event

from imagestudio.container import Container
from imagestudio.generations import fenced, queue, service
from imagestudio.generations.events import events_after
from tests.api.helpers import API, run_queue
from tests.api.test_events import Event, read_stream

TURNS = 12


def _turn(client: TestClient, session_id: str, prompt: str) -> str:
    response = client.post(f"{API}/sessions/{session_id}/messages", json={"content": prompt, "width": 64, "height": 64})
    assert response.status_code in (200, 201), response.text
    return response.json()["generation_id"]


def _stream_after(client: TestClient, session_id: str, after: int, until: str | None = None) -> list[Event]:
    with client.stream("GET", f"{API}/sessions/{session_id}/events", params={"after": after}) as response:
        assert response.status_code == 200, response.read()
        return read_stream(response, until=until)[0]


def test_a_long_session_opened_after_its_last_event_id_streams_only_what_comes_next(app, accounts, container) -> None:
    container.settings.sse_max_seconds = 30
    owner = accounts.make()
    client = owner.client
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    for turn in range(TURNS):
        _turn(client, session_id, f"harbour number {turn}")
    run_queue(container)
    history = events_after(container.db, session_id=uuid.UUID(session_id), owner_id=uuid.UUID(owner.id), limit=5000)
    assert len(history) >= TURNS * 4 and {e.type for e in history} >= {"queued", "started", "succeeded"}

    detail = client.get(f"{API}/sessions/{session_id}").json()
    assert detail["last_event_id"] == max(e.position for e in history)
    assert {g["status"] for g in detail["generations"]} == {"succeeded"}

    # Entering the context starts the in-process worker, as under `imagestudio serve`.
    with TestClient(app):
        path = f"{API}/sessions/{session_id}/events"
        with client.stream("GET", path, params={"after": detail["last_event_id"]}) as response:
            assert response.status_code == 200
            new_generation = _turn(client, session_id, "a lighthouse")
            events, _ = read_stream(response, until="succeeded")
    assert [e.type for e in events][:1] == ["queued"] and events[-1].type == "succeeded"
    assert {e.data["generation_id"] for e in events} == {new_generation}
    assert min(e.id for e in events) > detail["last_event_id"]
    # A later detail moves on past the new events; nothing is left to send after it.
    again = client.get(f"{API}/sessions/{session_id}").json()
    assert again["last_event_id"] == events[-1].id
    container.settings.sse_max_seconds = 0.3
    assert _stream_after(client, session_id, again["last_event_id"]) == []


def test_an_event_between_the_detail_and_the_stream_is_delivered(accounts, container) -> None:
    client = accounts.make().client
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    first = _turn(client, session_id, "a kite")
    detail = client.get(f"{API}/sessions/{session_id}").json()
    assert detail["last_event_id"] > 0

    # Made after the detail was read, before the page opened its stream.
    second = _turn(client, session_id, "a second kite")
    assert client.post(f"{API}/generations/{first}/cancel").json()["status"] == "canceled"

    events = _stream_after(client, session_id, detail["last_event_id"], until="canceled")
    assert [(e.data["generation_id"], e.type) for e in events] == [(second, "queued"), (first, "canceled")]


def test_an_event_committed_while_the_detail_is_read_is_not_lost(accounts, container: Container) -> None:
    """The cancel commits after the detail took last_event_id and before it read the steps (the
    worst moment): the detail may already show it (PostgreSQL reads each statement afresh) or not
    (SQLite reads one snapshot), and either way the stream after last_event_id carries it."""
    owner = accounts.make()
    client = owner.client
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    queued = _turn(client, session_id, "a kite")
    fired: list[str] = []

    def cancel_meanwhile(_conn, _cursor, statement: str, *_args) -> None:
        # The detail's read of the session's steps (rules.step_order over its generations).
        if not fired and re.search(r"FROM generations\b", statement) and "ORDER BY" in statement:
            fired.append(statement)
            with container.db.writing() as db:
                service.request_cancel(db, generation_id=uuid.UUID(queued), owner_id=uuid.UUID(owner.id))

    event.listen(container.db.engine, "before_cursor_execute", cancel_meanwhile)
    try:
        detail = client.get(f"{API}/sessions/{session_id}").json()
    finally:
        event.remove(container.db.engine, "before_cursor_execute", cancel_meanwhile)
    assert fired, "the detail read no steps"
    assert detail["generations"][0]["status"] in ("queued", "canceled")

    events = _stream_after(client, session_id, detail["last_event_id"], until="canceled")
    assert [(e.data["generation_id"], e.type) for e in events] == [(queued, "canceled")]


def test_an_answer_being_written_is_replayed_from_its_first_event(accounts, container: Container) -> None:
    owner = accounts.make()
    client = owner.client
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    _turn(client, session_id, "a lighthouse")
    run_queue(container)
    asked = client.post(f"{API}/sessions/{session_id}/messages", json={"mode": "reply", "content": "why blue?"})
    assert asked.status_code == 201, asked.text
    reply = asked.json()["generation_id"]
    # A worker has streamed the first words of the answer and is writing the rest.
    [claimed] = queue.claim(container.db, worker_id="w", limit=1, lease_seconds=60, default_max_running=2)
    assert str(claimed.id) == reply
    assert fenced.record_delta(container.db, claimed, "Because the", 0) is False

    detail = client.get(f"{API}/sessions/{session_id}").json()
    history = events_after(container.db, owner_id=uuid.UUID(owner.id), limit=5000)
    first_of_reply = min(e.position for e in history if str(e.generation_id) == reply)
    assert detail["last_event_id"] == first_of_reply - 1 < max(e.position for e in history)
    events = _stream_after(client, session_id, detail["last_event_id"], until="delta")
    assert {e.data["generation_id"] for e in events} == {reply}
    assert [e.type for e in events] == ["queued", "started", "delta"]
    assert events[-1].data["payload"] == {"text": "Because the", "offset": 0}

    # That worker hands it back; another answers. Final, the answer is in the detail: the stream starts after it.
    assert queue.release(container.db, [claimed.lease]) == 1
    run_queue(container)
    final = client.get(f"{API}/sessions/{session_id}").json()
    assert next(m for m in final["messages"] if m["generation_id"] == reply)["status"] == "succeeded"
    newest = max(e.position for e in events_after(container.db, owner_id=uuid.UUID(owner.id), limit=5000))
    assert final["last_event_id"] == newest
    container.settings.sse_max_seconds = 0.3
    assert _stream_after(client, session_id, final["last_event_id"]) == []
