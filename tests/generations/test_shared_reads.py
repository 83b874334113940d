"""Streams at the same position share one read of the events table, and never a read that may have
missed what they were told about."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from imagestudio.generations.events import EventRecord
from imagestudio.generations.streams import SharedReads

OWNER = uuid.uuid4()
GENERATION = uuid.uuid4()


def _event(position: int, kind: str) -> EventRecord:
    return EventRecord(
        id=position,
        position=position,
        generation_id=GENERATION,
        owner_id=OWNER,
        session_id=None,
        sequence=position,
        attempt=1,
        type=kind,
        payload={},
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@dataclass(eq=False)
class RecordingScope:
    """Stands where a stream's Scope does: answers the events "committed" so far, and counts its reads.
    A read waits for `release`, so the test decides what is committed while a read is under way."""

    committed: list[EventRecord] = field(default_factory=list)
    reads: int = 0
    release: threading.Event = field(default_factory=threading.Event)

    def read(self, _db: object, after: int) -> list[EventRecord]:
        self.reads += 1
        seen = [event for event in self.committed if event.position > after]
        assert self.release.wait(30)
        return seen

    def __hash__(self) -> int:
        return id(self)


async def _until(condition, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_many_streams_at_one_position_make_one_read() -> None:
    async def scenario() -> None:
        reads, scope, db = SharedReads(), RecordingScope([_event(1, "queued")]), object()
        noticed = time.monotonic()
        waiting = [asyncio.create_task(reads.read(db, scope, 0, noticed)) for _ in range(200)]
        await _until(lambda: scope.reads == 1)
        scope.release.set()
        answers = await asyncio.gather(*waiting)
        assert scope.reads == 1
        assert all(answer == answers[0] for answer in answers)
        assert [(position, kind) for position, kind, _ in answers[0]] == [(1, "queued")]
        assert answers[0][0][2].startswith("id: 1\nevent: queued\ndata: ")
        # Once done, the next notice reads again.
        again = await reads.read(db, scope, 0, time.monotonic())
        assert scope.reads == 2 and again == answers[0]

    asyncio.run(scenario())


def test_a_notice_newer_than_the_read_under_way_gets_a_read_of_its_own() -> None:
    async def scenario() -> None:
        reads, scope, db = SharedReads(), RecordingScope([_event(1, "queued")]), object()
        early = asyncio.create_task(reads.read(db, scope, 0, time.monotonic()))
        await _until(lambda: scope.reads == 1)
        # Committed (and announced) after the first read began: that read may not have seen it.
        scope.committed.append(_event(2, "succeeded"))
        late = asyncio.create_task(reads.read(db, scope, 0, time.monotonic()))
        await _until(lambda: scope.reads == 2)
        scope.release.set()
        assert [kind for _, kind, _ in await late] == ["queued", "succeeded"]
        assert [kind for _, kind, _ in await early] == ["queued"]

    asyncio.run(scenario())


def test_a_stream_that_leaves_does_not_cancel_the_read_others_wait_for() -> None:
    async def scenario() -> None:
        reads, scope, db = SharedReads(), RecordingScope([_event(1, "queued")]), object()
        noticed = time.monotonic()
        leaving = asyncio.create_task(reads.read(db, scope, 0, noticed))
        staying = asyncio.create_task(reads.read(db, scope, 0, noticed))
        await _until(lambda: scope.reads == 1)
        leaving.cancel()
        scope.release.set()
        assert [kind for _, kind, _ in await staying] == ["queued"]
        assert leaving.cancelled() and scope.reads == 1

    asyncio.run(scenario())
