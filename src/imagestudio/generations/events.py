"""The append-only event log of each generation, and the reads live streams replay from.

Sequences come from generations.event_seq, bumped in the same (fenced) UPDATE that changes the
generation, so a generation's events are numbered without gaps in the order they happened, and a
worker that lost its lease cannot add any.

Streams resume from a position: each owner's events are numbered by their row in event_counters,
bumped by the transaction that inserts them and locked until it commits, so one owner's positions
become visible in increasing order (a reader that has seen position N never later finds a committed
one below N), without gaps. Every stream carries one owner's events, so it replays exactly once.
Nothing wider than one user is locked: a worker stuck inside a transaction can hold up only that
user's event writes, and only until the database ends its session (idle_in_transaction timeout).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from imagestudio import notify
from imagestudio.db import Database
from imagestudio.models import EventCounter, EventType, Generation, GenerationEvent
from imagestudio.models.types import utcnow

GENERATIONS = Generation.__table__
EVENTS = GenerationEvent.__table__
COUNTERS = EventCounter.__table__
PROGRESS_INTERVAL_SECONDS = 0.25
_INSERT_EVENTS = insert(EVENTS)
DEFAULT_PAGE = 500


@dataclass(frozen=True)
class GenerationRef:
    """What an event row needs to know about its generation."""

    id: uuid.UUID
    owner_id: uuid.UUID
    session_id: uuid.UUID | None


@dataclass(frozen=True)
class EventRecord:
    id: int
    position: int
    generation_id: uuid.UUID
    owner_id: uuid.UUID
    session_id: uuid.UUID | None
    sequence: int
    attempt: int
    type: str
    payload: dict
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.position,
            "generation_id": str(self.generation_id),
            "session_id": str(self.session_id) if self.session_id else None,
            "sequence": self.sequence,
            "attempt": self.attempt,
            "type": self.type,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
        }


EventSpec = tuple[EventType, dict]


def event_rows(
    ref: GenerationRef, *, attempt: int, last_sequence: int, events: Sequence[EventSpec], at: datetime | None = None
) -> list[dict]:
    """Rows for `events`, numbered so the last one gets last_sequence (the value event_seq was bumped to)."""
    at = at or utcnow()
    first = last_sequence - len(events) + 1
    return [
        {
            "generation_id": ref.id,
            "owner_id": ref.owner_id,
            "session_id": ref.session_id,
            "sequence": first + offset,
            "attempt": attempt,
            "type": str(kind),
            "payload": payload,
            "created_at": at,
        }
        for offset, (kind, payload) in enumerate(events)
    ]


def _bump_counter(db: Session, owner_id: uuid.UUID, count: int) -> int:
    """Reserve `count` positions for owner_id; returns the last one. Locks the owner's counter row
    until commit (that lock orders the owner's events)."""
    dialect_insert = postgresql.insert if db.connection().dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(COUNTERS).values(owner_id=owner_id, last_position=count)
    statement = statement.on_conflict_do_update(
        index_elements=[COUNTERS.c.owner_id], set_={"last_position": COUNTERS.c.last_position + count}
    ).returning(COUNTERS.c.last_position)
    return int(db.connection().execute(statement).scalar_one())


def insert_events(db: Session, rows: Sequence[dict]) -> list[dict]:
    """Give event rows their owners' positions, insert them and announce them on commit. Call it last
    in the transaction: it locks each owner's counter (in owner order, so writers never deadlock on
    them) until commit, and the shorter that is held the better. Returns the rows as inserted."""
    if not rows:
        return []
    rows = [dict(row) for row in rows]
    by_owner: dict[uuid.UUID, list[dict]] = {}
    for row in rows:
        by_owner.setdefault(row["owner_id"], []).append(row)
    for owner_id in sorted(by_owner):
        owned = by_owner[owner_id]
        last = _bump_counter(db, owner_id, len(owned))
        for offset, row in enumerate(owned):
            row["position"] = last - len(owned) + 1 + offset
    connection = db.connection()
    connection.execute(_INSERT_EVENTS, rows)
    notices = {notify.EventNotice(row["generation_id"], row["session_id"], row["owner_id"]) for row in rows}
    notify.announce_events(db, notices)
    return rows


def append_event(
    db: Session, generation_id: uuid.UUID, kind: EventType, payload: dict | None = None, *, where: Sequence = ()
) -> EventRecord | None:
    """Number and insert one event outside a worker (services: cancel, create). `where` adds conditions
    to the numbering UPDATE; None when they did not hold (nothing is written then)."""
    row = db.execute(
        update(GENERATIONS)
        .where(GENERATIONS.c.id == generation_id, *where)
        .values(event_seq=GENERATIONS.c.event_seq + 1)
        .returning(GENERATIONS.c.event_seq, GENERATIONS.c.owner_id, GENERATIONS.c.session_id, GENERATIONS.c.attempt)
    ).first()
    if row is None:
        return None
    ref = GenerationRef(generation_id, row.owner_id, row.session_id)
    [values] = event_rows(ref, attempt=row.attempt, last_sequence=row.event_seq, events=[(kind, payload or {})])
    [stored] = insert_events(db, [values])
    return EventRecord(id=0, **stored)


def latest_position(db: Session, owner_id: uuid.UUID) -> int:
    """The position of owner_id's newest committed event (0 before the first). Every event at or below
    it is committed and visible (see the module's note), so what a reader reads after this reflects
    them all, and a stream opened after it carries every later one."""
    return int(db.scalar(select(COUNTERS.c.last_position).where(COUNTERS.c.owner_id == owner_id)) or 0)


def first_position(db: Session, owner_id: uuid.UUID, generation_ids: Sequence[uuid.UUID]) -> int | None:
    """The position of the earliest event of any of these generations of owner_id (None: they have none)."""
    if not generation_ids:
        return None
    found = db.scalar(
        select(func.min(EVENTS.c.position)).where(
            EVENTS.c.owner_id == owner_id, EVENTS.c.generation_id.in_(list(generation_ids))
        )
    )
    return None if found is None else int(found)


def events_after(
    db: Database | Session,
    *,
    generation_id: uuid.UUID | None = None,
    session_id: uuid.UUID | None = None,
    owner_id: uuid.UUID | None = None,
    after: int = 0,
    limit: int = DEFAULT_PAGE,
) -> list[EventRecord]:
    """Events past position `after` matching every filter given, oldest first (SSE replay,
    Last-Event-ID). Positions are per owner: every stream is one owner's, so pass owner_id with the
    others (a generation's or session's events are all its owner's anyway)."""
    if generation_id is None and session_id is None and owner_id is None:
        raise ValueError("give generation_id, session_id or owner_id")
    statement = (
        select(EVENTS).where(EVENTS.c.position > after).order_by(EVENTS.c.position).limit(max(1, min(limit, 5000)))
    )
    if generation_id is not None:
        statement = statement.where(EVENTS.c.generation_id == generation_id)
    if session_id is not None:
        statement = statement.where(EVENTS.c.session_id == session_id)
    if owner_id is not None:
        statement = statement.where(EVENTS.c.owner_id == owner_id)
    if isinstance(db, Database):
        with db.reading() as session:
            rows = session.execute(statement).all()
    else:
        rows = db.execute(statement).all()
    return [EventRecord(**row._asdict()) for row in rows]


class ProgressThrottle:
    """Decides which progress reports become events: at most one per interval per generation, so a fast
    generation writes none until its final step (which the worker folds into its last transaction).

    report() is called from whatever thread the provider uses; it is cheap and thread-safe."""

    def __init__(self, interval: float = PROGRESS_INTERVAL_SECONDS, clock=time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last_write = clock()
        self._writing = False
        self.step = 0
        self.total = 0
        # The output the latest step belongs to, when the provider renders a batch one image at a time.
        self.image: int | None = None
        self.written = (0, 0)

    def report(self, step: int, total: int, image: int | None = None) -> bool:
        """Record a step; True when the caller should write a progress event now."""
        with self._lock:
            self.step, self.total, self.image = step, total, image
            if self._writing or self._clock() - self._last_write < self._interval:
                return False
            self._writing = True
            return True

    def take(self) -> tuple[int, int]:
        """The step to write now (the latest, not the one that triggered the write)."""
        with self._lock:
            return self.step, self.total

    def wrote(self, step: int, total: int) -> None:
        with self._lock:
            self.written = (step, total)
            self._last_write = self._clock()
            self._writing = False

    def unwritten(self) -> tuple[int, int] | None:
        """The latest step if no event carries it yet (the final one, at the end)."""
        with self._lock:
            latest = (self.step, self.total)
            return latest if latest != self.written and self.total > 0 else None
