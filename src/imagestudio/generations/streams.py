"""Live events over Server-Sent Events: one generation, one session, or all of a user's generations.

Each stored event goes out as `id:` (its position among its owner's events), `event:` (its type)
and `data:` (the event as JSON). A stream starts after Last-Event-ID (the header a reconnecting
browser sends) or ?after=, replays what was stored since, then follows new events. The events
table is the truth: a notification only says "look again", so the stream re-reads from its cursor
after every nudge and, in case a notification was lost, every sse_poll_seconds. Each read is its own short transaction;
nothing holds a connection while the stream waits. A comment line goes out every
sse_heartbeat_seconds of silence; a stream ends after sse_max_seconds (the client resumes it), and a
single generation's stream ends once the generation is final.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from imagestudio.accounts.deps import CurrentUser
from imagestudio.container import Container, ContainerDep
from imagestudio.db import Database
from imagestudio.generations.events import DEFAULT_PAGE, EventRecord, events_after
from imagestudio.generations.schemas import GenerationEventOut
from imagestudio.kit.errors import ApiError, not_found
from imagestudio.kit.openapi import not_null_with
from imagestudio.models import FINAL_STATUSES, ChatSession, EventType, Generation

router = APIRouter(tags=["events"])

MAX_EVENT_ID = 2**63 - 1
FINAL_EVENTS = frozenset({EventType.succeeded.value, EventType.failed.value, EventType.canceled.value})
# How long a browser waits before reconnecting after the stream ends.
RECONNECT_MILLISECONDS = 2000


class EventStreamResponse(StreamingResponse):
    media_type = "text/event-stream"


# Each event of the stream: its id, its type, and GenerationEventOut as JSON in `data`.
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "event": {"type": "string", "enum": [kind.value for kind in EventType]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": GenerationEventOut.model_json_schema(),
        },
    },
}
_RESPONSES: dict = {
    200: {"content": {"text/event-stream": {"schema": _EVENT_SCHEMA}}, "description": "The event stream."},
}
LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=32,
        description="Resume after this event id.",
        # Stated for clients (18 digits stay below MAX_EVENT_ID); start_after checks it.
        json_schema_extra=not_null_with(pattern="^[0-9]{0,18}$"),
    ),
]
After = Annotated[int | None, Query(ge=0, le=MAX_EVENT_ID, description="Resume after this event id.")]


@dataclass(frozen=True)
class Scope:
    """Which events a stream carries (every given filter must match)."""

    owner_id: uuid.UUID
    generation_id: uuid.UUID | None = None
    session_id: uuid.UUID | None = None

    def read(self, db: Database, after_id: int) -> list[EventRecord]:
        return events_after(
            db,
            generation_id=self.generation_id,
            session_id=self.session_id,
            owner_id=self.owner_id,
            after=after_id,
            limit=DEFAULT_PAGE,
        )


def start_after(last_event_id: LastEventId = None, after: After = None) -> int:
    """The event id a stream resumes after: Last-Event-ID wins over ?after=; 0 replays everything."""
    if last_event_id is not None and last_event_id.strip():
        value = last_event_id.strip()
        if not (value.isascii() and value.isdigit()) or int(value) > MAX_EVENT_ID:
            raise ApiError(400, "invalid_last_event_id", "Last-Event-ID must be an event id this stream sent.")
        return int(value)
    return after or 0


StartAfter = Annotated[int, Depends(start_after)]


class SharedReads:
    """Streams of one scope at one position share their reads: when a generation's events go out to
    a thousand subscribers of the same stream, one query (and one JSON encoding per event) serves
    them all instead of a thousand.

    A stream joins a read already under way only if that read started after `not_before` (the
    arrival of the notices it is answering), so the read sees every event they announced."""

    def __init__(self) -> None:
        self._reads: dict[tuple[Database, Scope, int], tuple[float, asyncio.Future[list[tuple[int, str, str]]]]] = {}

    async def read(self, db: Database, scope: Scope, cursor: int, not_before: float) -> list[tuple[int, str, str]]:
        """(position, type, formatted text) of the events after `cursor`."""
        key = (db, scope, cursor)
        current = self._reads.get(key)
        if current is None or current[0] < not_before:
            started = time.monotonic()
            future = asyncio.ensure_future(run_in_threadpool(_read_formatted, db, scope, cursor))
            current = self._reads[key] = (started, future)

            def forget(done: asyncio.Future, key: tuple[Database, Scope, int] = key) -> None:
                if key in self._reads and self._reads[key][1] is done:
                    del self._reads[key]

            future.add_done_callback(forget)
        # Shielded: one subscriber leaving does not cancel the read the others wait for.
        return await asyncio.shield(current[1])


# One per event loop (test clients run several), created when a stream first asks.
_shared_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SharedReads] = weakref.WeakKeyDictionary()


def shared_reads() -> SharedReads:
    loop = asyncio.get_running_loop()
    reads = _shared_reads.get(loop)
    if reads is None:
        reads = _shared_reads[loop] = SharedReads()
    return reads


def _read_formatted(db: Database, scope: Scope, cursor: int) -> list[tuple[int, str, str]]:
    return [(event.position, event.type, format_event(event)) for event in scope.read(db, cursor)]


def format_event(event: EventRecord) -> str:
    data = GenerationEventOut(
        id=event.position,
        generation_id=event.generation_id,
        session_id=event.session_id,
        sequence=event.sequence,
        attempt=event.attempt,
        type=event.type,
        payload=event.payload,
        created_at=event.created_at,
    ).model_dump_json()
    return f"id: {event.position}\nevent: {event.type}\ndata: {data}\n\n"


async def stream_events(
    container: Container, scope: Scope, after_id: int, *, first: Sequence[EventRecord] = (), end_when_final: bool
) -> AsyncIterator[str]:
    settings = container.settings
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.sse_max_seconds
    cursor = after_id
    yield f"retry: {RECONNECT_MILLISECONDS}\n\n"
    last_sent = loop.time()
    subscription = container.hub.subscribe_events(
        generation_id=scope.generation_id, session_id=scope.session_id, owner_id=scope.owner_id
    )
    async with subscription as notices:
        batch = [(event.position, event.type, format_event(event)) for event in first]
        # The first read happened before the subscription: read once more before waiting, so an
        # event committed in between is not left for the next poll.
        subscribed_late = True
        not_before = time.monotonic()
        while True:
            for position, event_type, text in batch:
                yield text
                cursor = position
                last_sent = loop.time()
                if end_when_final and event_type in FINAL_EVENTS:
                    return
            if len(batch) < DEFAULT_PAGE and not subscribed_late:
                now = loop.time()
                if now >= deadline:
                    return
                silence = now - last_sent
                wait = min(settings.sse_poll_seconds, settings.sse_heartbeat_seconds - silence, deadline - now)
                notice = await notices.get(max(0.0, wait))
                if notice is None and loop.time() - last_sent >= settings.sse_heartbeat_seconds:
                    yield ": keep-alive\n\n"
                    last_sent = loop.time()
                # A poll (no notice) reads afresh; a notice may share a read started after it came.
                not_before = notices.last_notice_at if notice is not None else time.monotonic()
            subscribed_late = False
            batch = await shared_reads().read(container.db, scope, cursor, not_before)


def _open(container: Container, scope: Scope, after_id: int, *, end_when_final: bool, final: bool) -> Response:
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    first = scope.read(container.db, after_id)
    if final and not first:
        # Nothing more will ever come: 204 tells an EventSource to stop reconnecting.
        return Response(status_code=204, headers=headers)
    stream = stream_events(container, scope, after_id, first=first, end_when_final=end_when_final)
    return EventStreamResponse(stream, headers=headers)


def _generation_final(db: Database, owner_id: uuid.UUID, generation_id: uuid.UUID) -> bool:
    with db.reading() as session:
        status = session.scalar(
            select(Generation.status).where(Generation.id == generation_id, Generation.owner_id == owner_id)
        )
    if status is None:
        raise not_found("generation")
    return status in FINAL_STATUSES


def _check_session(db: Database, owner_id: uuid.UUID, session_id: uuid.UUID) -> None:
    with db.reading() as session:
        found = session.scalar(
            select(ChatSession.id).where(ChatSession.id == session_id, ChatSession.owner_id == owner_id)
        )
    if found is None:
        raise not_found("session")


@router.get(
    "/generations/{generation_id}/events",
    response_class=EventStreamResponse,
    responses={**_RESPONSES, 204: {"description": "The generation is final and every event was sent."}},
)
async def generation_events(
    generation_id: uuid.UUID,
    user: CurrentUser,
    container: ContainerDep,
    after_id: StartAfter,
) -> Response:
    """One generation's events; the stream ends after its final event."""
    final = await run_in_threadpool(_generation_final, container.db, user.id, generation_id)
    scope = Scope(owner_id=user.id, generation_id=generation_id)
    return await run_in_threadpool(_open, container, scope, after_id, end_when_final=True, final=final)


@router.get("/sessions/{session_id}/events", response_class=EventStreamResponse, responses=_RESPONSES)
async def session_events(
    session_id: uuid.UUID,
    user: CurrentUser,
    container: ContainerDep,
    after_id: StartAfter,
) -> Response:
    """Events of every generation in the session."""
    await run_in_threadpool(_check_session, container.db, user.id, session_id)
    scope = Scope(owner_id=user.id, session_id=session_id)
    return await run_in_threadpool(_open, container, scope, after_id, end_when_final=False, final=False)


@router.get("/events", response_class=EventStreamResponse, responses=_RESPONSES)
async def user_events(user: CurrentUser, container: ContainerDep, after_id: StartAfter) -> Response:
    """Events of all your generations."""
    scope = Scope(owner_id=user.id)
    return await run_in_threadpool(_open, container, scope, after_id, end_when_final=False, final=False)
