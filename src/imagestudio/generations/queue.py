"""The generations table as a queue: claiming, leases, the reaper and the storage sweeper.

A claim is one statement. It reads the head of the queue (priority, then age; users already at
their allowance skipped), keeps only as many per user as they have free running slots
(users.max_running or the configured default),
orders the survivors by priority, then by their rank within their user (so users interleave: each
user's first before anyone's second, and one user's backlog never crowds out another's request),
then by age; gives each claimed row a free running slot of its owner and turns the rows to
processing under a lease. The partial unique index on (owner_id, running_slot)
makes the allowance race-free: two claimers that pick the same slot cannot both commit; the loser
retries. On PostgreSQL candidates are locked with FOR UPDATE SKIP LOCKED so claimers do not queue
behind each other; SQLite runs the same statement under BEGIN IMMEDIATE.

Every write a worker makes afterwards is fenced by (id, lease_owner, attempt, status=processing);
see fenced.py.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, and_, bindparam, case, column, delete, or_, select, text, tuple_, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from imagestudio import notify
from imagestudio.db import Database
from imagestudio.generations.events import COUNTERS, GENERATIONS, GenerationRef, event_rows, insert_events
from imagestudio.models import BatchImage, EventType, GenerationInput, RunStatus, rules
from imagestudio.models.assets import Asset
from imagestudio.models.types import UTCDateTime, utcnow
from imagestudio.storage.base import Storage
from imagestudio.storage.keys import stored_objects

log = logging.getLogger(__name__)

CLAIM_ATTEMPTS = 20
# Class of the per-user advisory locks PostgreSQL claimers take ("imgo").
OWNER_LOCK_CLASS = 0x696D676F
# Rows looked at per claim, as a multiple of the rows wanted: room to skip rows other claimers hold.
SCAN_FACTOR = 4
MIN_SCAN = 16
# How deep into the queue (in serving order, users at their allowance skipped) one claim looks.
# Bounded so a claim costs the same with ten or a million queued; a user whose backlog fills it
# reaches their allowance in that claim, and the next claim looks past them.
HEAD_ROWS = 64
# Retry backoff for attempts that failed transiently or whose worker vanished.
BACKOFF_BASE_SECONDS = 2.0
BACKOFF_CAP_SECONDS = 300.0
LOST_WORKER = "worker_lost"
# Expired leases returned to the queue per reaper round.
REAP_BATCH = 500


def new_worker_id() -> str:
    """A fresh lease owner id for this worker process (host, pid, random suffix)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Lease:
    """The fence every worker write carries."""

    generation_id: uuid.UUID
    owner: str
    attempt: int


@dataclass(frozen=True)
class InputRef:
    asset_id: uuid.UUID
    role: str
    position: int
    storage_key: str


@dataclass
class ClaimedGeneration:
    """A generation as its worker sees it after claiming."""

    id: uuid.UUID
    owner_id: uuid.UUID
    session_id: uuid.UUID | None
    message_id: uuid.UUID | None
    parent_generation_id: uuid.UUID | None
    type: str
    provider: str
    model: str
    prompt: str
    negative_prompt: str | None
    enhanced_prompt: str | None
    enhance_prompt: bool
    prompt_method: str | None
    aspect_ratio: str | None
    width: int
    height: int
    num_images: int
    steps: int | None
    guidance: float | None
    strength: float | None
    scheduler: str | None
    seed: int | None
    upscale_factor: int | None
    params: dict
    # The prompt builder's options: a language model asked to write the prompt reads them.
    prompt_options: dict
    priority: int
    attempt: int
    max_attempts: int
    event_seq: int
    created_at: datetime
    started_at: datetime
    lease_owner: str
    inputs: list[InputRef] = field(default_factory=list)

    @property
    def lease(self) -> Lease:
        return Lease(self.id, self.lease_owner, self.attempt)

    @property
    def ref(self) -> GenerationRef:
        return GenerationRef(self.id, self.owner_id, self.session_id)


_RETURNED = [item.name for item in fields(ClaimedGeneration) if item.name != "inputs"]

_CLAIM_SQL = """
WITH RECURSIVE
busy AS MATERIALIZED (
    SELECT owner_id, count(*) AS running FROM generations
    WHERE running_slot IS NOT NULL
    GROUP BY owner_id
),
saturated AS MATERIALIZED (
    SELECT busy.owner_id FROM busy JOIN users ON users.id = busy.owner_id
    WHERE busy.running >= coalesce(users.max_running, :default_max_running)
),
head AS MATERIALIZED (
    SELECT id, owner_id, priority FROM generations {claim_index}
    WHERE status = 'queued' AND run_after <= :now AND attempt < max_attempts {provider_filter}
      AND owner_id NOT IN (SELECT owner_id FROM saturated)
    ORDER BY priority DESC, id
    LIMIT :head
),
ready AS MATERIALIZED (
    SELECT head.id, head.owner_id, head.priority,
           row_number() OVER (PARTITION BY head.owner_id ORDER BY head.priority DESC, head.id) AS owner_rank,
           coalesce(users.max_running, :default_max_running) - coalesce(busy.running, 0) AS free_slots
    FROM head
    JOIN users ON users.id = head.owner_id
    LEFT JOIN busy ON busy.owner_id = head.owner_id
),
candidates AS MATERIALIZED (
    SELECT id, owner_id, priority FROM generations
    WHERE {eligible_match} AND {unindexed}status = 'queued' {owner_lock}
    ORDER BY priority DESC, id
    LIMIT :scan
    {lock}
),
ranked AS MATERIALIZED (
    SELECT id, owner_id, priority,
           row_number() OVER (PARTITION BY owner_id ORDER BY priority DESC, id) AS owner_rank
    FROM candidates
),
limits AS MATERIALIZED (
    SELECT users.id AS owner_id, coalesce(users.max_running, :default_max_running) AS allowed
    FROM users WHERE users.id IN (SELECT owner_id FROM candidates)
),
slots(n) AS (
    SELECT 0
    UNION ALL
    SELECT n + 1 FROM slots WHERE n + 1 < (SELECT max(allowed) FROM limits)
),
free AS MATERIALIZED (
    SELECT limits.owner_id, slots.n AS slot,
           row_number() OVER (PARTITION BY limits.owner_id ORDER BY slots.n) AS owner_rank
    FROM limits JOIN slots ON slots.n < limits.allowed
    WHERE NOT EXISTS (
        SELECT 1 FROM generations AS holder
        WHERE holder.owner_id = limits.owner_id AND holder.running_slot = slots.n
    )
),
chosen AS MATERIALIZED (
    SELECT ranked.id AS id, free.slot AS slot FROM ranked
    JOIN free ON free.owner_id = ranked.owner_id AND free.owner_rank = ranked.owner_rank
    ORDER BY ranked.priority DESC, ranked.owner_rank, ranked.id
    LIMIT :wanted
)
UPDATE generations SET
    status = 'processing',
    running_slot = chosen.slot,
    lease_owner = :worker_id,
    lease_expires_at = :lease_expires_at,
    attempt = generations.attempt + 1,
    started_at = :now,
    updated_at = :now,
    event_seq = generations.event_seq + 1,
    progress_step = 0,
    progress_total = 0
FROM chosen
WHERE generations.id = chosen.id AND {unindexed}generations.status = 'queued'
RETURNING {returned},
    (SELECT count(*) FROM generation_inputs WHERE generation_inputs.generation_id = generations.id) AS input_count
"""


_COUNTER_FREE = """AND (
        NOT EXISTS (SELECT 1 FROM event_counters WHERE event_counters.owner_id = generations.owner_id)
        OR EXISTS (
            SELECT 1 FROM event_counters WHERE event_counters.owner_id = generations.owner_id
            FOR UPDATE SKIP LOCKED
        )
    )"""


def _claim_statement(dialect: str, with_providers: bool):
    postgres = dialect == "postgresql"
    sql = _CLAIM_SQL.format(
        provider_filter="AND provider IN :providers" if with_providers else "",
        lock="FOR UPDATE SKIP LOCKED" if postgres else "",
        # An array probe of the primary key: a plan that stays cheap whatever the statistics say.
        eligible_match=(
            "id = ANY(ARRAY(SELECT id FROM ready WHERE owner_rank <= free_slots))"
            if postgres
            else "id IN (SELECT id FROM ready WHERE owner_rank <= free_slots)"
        ),
        returned=", ".join(f"generations.{name}" for name in _RETURNED),
        # SQLite without statistics picks the status index and sorts every queued row; steer it:
        # read the head through the claim index, and find the few chosen rows by primary key
        # (a unary + keeps the status test from being used as an index).
        claim_index="" if postgres else "INDEXED BY ix_generations_claim",
        # One claimer per user at a time: a claimer that cannot take a user's lock at once skips
        # that user's rows, so two claimers never race for the same running slot (and never wait
        # on each other's unique-index entries).
        # Nor wait on a user's event counter that a stuck transaction holds (the claim writes their
        # 'started' events): their rows are skipped until it is free.
        owner_lock=(
            f"AND pg_try_advisory_xact_lock({OWNER_LOCK_CLASS}, hashtext(owner_id::text)) {_COUNTER_FREE}"
            if postgres
            else ""
        ),
        unindexed="" if postgres else "+",
    )
    statement = text(sql).bindparams(
        bindparam("now", type_=UTCDateTime()),
        bindparam("lease_expires_at", type_=UTCDateTime()),
        bindparam("worker_id", type_=String()),
        bindparam("default_max_running", type_=Integer()),
        bindparam("scan", type_=Integer()),
        bindparam("head", type_=Integer()),
        bindparam("wanted", type_=Integer()),
    )
    if with_providers:
        statement = statement.bindparams(bindparam("providers", expanding=True, type_=String()))
    columns = {column.name: column for column in GENERATIONS.columns}
    return statement.columns(*(columns[name] for name in _RETURNED), column("input_count", Integer()))


_STATEMENTS: dict[tuple[str, bool], object] = {}


def claim(
    db: Database,
    *,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    default_max_running: int,
    providers: Sequence[str] | None = None,
) -> list[ClaimedGeneration]:
    """Claim up to `limit` ready generations for this worker, each under a fresh lease, with its
    'started' event written in the same transaction. Only generations for `providers` (when given)."""
    if limit < 1:
        return []
    key = (db.dialect, providers is not None)
    # A cache of built statements: without it every claim builds the same statement again.
    statement = _STATEMENTS.get(key)  # pragma: no mutate
    if statement is None:
        statement = _STATEMENTS[key] = _claim_statement(*key)
    for attempt in range(CLAIM_ATTEMPTS):
        try:
            return _claim_once(db, statement, worker_id, limit, lease_seconds, default_max_running, providers)
        except (IntegrityError, OperationalError) as error:
            if not _is_claim_conflict(error) or attempt == CLAIM_ATTEMPTS - 1:
                raise
            # Another claimer committed the same running slot after our snapshot was taken.
            time.sleep(random.uniform(0.0005, 0.003) * (attempt + 1))
    return []


def _is_claim_conflict(error: DBAPIError) -> bool:
    if isinstance(error, IntegrityError):
        return True  # the only unique index a claim can hit is the running-slot one
    sqlstate = getattr(error.orig, "sqlstate", None)
    # lock_not_available, deadlock_detected, serialization_failure
    return sqlstate in ("55P03", "40P01", "40001")


def _claim_once(
    db: Database,
    statement,
    worker_id: str,
    limit: int,
    lease_seconds: float,
    default_max_running: int,
    providers: Sequence[str] | None,
) -> list[ClaimedGeneration]:
    now = utcnow()
    params: dict = {
        "now": now,
        "lease_expires_at": now + timedelta(seconds=lease_seconds),
        "worker_id": worker_id,
        "default_max_running": default_max_running,
        "scan": max(MIN_SCAN, limit * SCAN_FACTOR),
        "head": max(HEAD_ROWS, limit * 2 * SCAN_FACTOR),
        "wanted": limit,
    }
    if providers is not None:
        if not providers:
            return []
        params["providers"] = list(providers)
    with db.writing() as session:
        connection = session.connection()
        rows = connection.execute(statement, params).all()
        if not rows:
            return []
        # RETURNING gives no order; start them in the order the queue served them.
        claimed = []
        with_inputs = []
        for row in rows:
            values = row._asdict()
            if values.pop("input_count"):
                with_inputs.append(values["id"])
            claimed.append(ClaimedGeneration(**values, inputs=[]))
        claimed.sort(key=lambda generation: (-generation.priority, generation.id))
        if with_inputs:
            by_id = {generation.id: generation for generation in claimed}
            for generation_id, input_ref in _inputs_of(session, with_inputs):
                by_id[generation_id].inputs.append(input_ref)
        events = []
        for generation in claimed:
            if generation.message_id is not None:
                rules.generation_status_changed(session, generation.id, RunStatus.processing.value)
            payload = {"attempt": generation.attempt, "worker": worker_id}
            events += event_rows(
                generation.ref,
                attempt=generation.attempt,
                last_sequence=generation.event_seq,
                events=[(EventType.started, payload)],
                at=now,
            )
        insert_events(session, events)
        return claimed


def _inputs_of(session: Session, generation_ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, InputRef]]:
    inputs, assets = GenerationInput.__table__, Asset.__table__
    rows = (
        session.connection()
        .execute(
            select(inputs.c.generation_id, inputs.c.asset_id, inputs.c.role, inputs.c.position, assets.c.storage_key)
            .join(assets, assets.c.id == inputs.c.asset_id)
            .where(inputs.c.generation_id.in_(generation_ids))
            .order_by(inputs.c.generation_id, inputs.c.role, inputs.c.position)
        )
        .all()
    )
    return [(row.generation_id, InputRef(row.asset_id, row.role, row.position, row.storage_key)) for row in rows]


def has_ready_work(db: Database, providers: Sequence[str] | None = None) -> bool:
    """A cheap read: is anything claimable now? Lets idle pollers skip taking the write lock."""
    statement = select(GENERATIONS.c.id).where(
        GENERATIONS.c.status == RunStatus.queued.value, GENERATIONS.c.run_after <= utcnow()
    )
    if providers is not None:
        statement = statement.where(GENERATIONS.c.provider.in_(list(providers)))
    with db.reading() as session:
        return session.execute(statement.limit(1)).first() is not None


# ---- leases ----


def fence(lease: Lease):
    """The WHERE clause every worker write carries: still ours, and not expired."""
    return and_(
        GENERATIONS.c.id == lease.generation_id,
        GENERATIONS.c.lease_owner == lease.owner,
        GENERATIONS.c.attempt == lease.attempt,
        GENERATIONS.c.status == RunStatus.processing.value,
        GENERATIONS.c.lease_expires_at > utcnow(),
    )


def renew(db: Database, leases: Sequence[Lease], lease_seconds: float) -> dict[uuid.UUID, bool]:
    """Extend the leases still held, in one statement. Returns {generation_id: cancel_requested} for
    those; a lease missing from the answer was lost (expired and reaped): its work must stop."""
    if not leases:
        return {}
    owner = leases[0].owner
    now = utcnow()
    with db.writing() as session:
        rows = session.execute(
            update(GENERATIONS)
            .where(
                tuple_(GENERATIONS.c.id, GENERATIONS.c.attempt).in_(
                    [(lease.generation_id, lease.attempt) for lease in leases]
                ),
                GENERATIONS.c.lease_owner == owner,
                GENERATIONS.c.status == RunStatus.processing.value,
                # An expired lease is lost even before the reaper gets to it: never revive one.
                GENERATIONS.c.lease_expires_at > now,
            )
            .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
            .returning(GENERATIONS.c.id, GENERATIONS.c.cancel_requested)
        ).all()
    return {row.id: row.cancel_requested for row in rows}


def release(db: Database, leases: Sequence[Lease], reason: str = "worker_shutdown") -> int:
    """Hand generations back to the queue without spending an attempt (a worker shutting down).
    One whose cancel was requested is not released: its worker cancels it instead."""
    released = 0
    for lease in leases:
        with db.writing() as session:
            row = session.execute(
                update(GENERATIONS)
                .where(fence(lease), GENERATIONS.c.cancel_requested.is_(False))
                .values(
                    status=RunStatus.queued.value,
                    attempt=GENERATIONS.c.attempt - 1,
                    running_slot=None,
                    lease_owner=None,
                    lease_expires_at=None,
                    run_after=utcnow(),
                    updated_at=utcnow(),
                    cleanup_pending=True,
                    event_seq=GENERATIONS.c.event_seq + 1,
                )
                .returning(
                    GENERATIONS.c.event_seq, GENERATIONS.c.owner_id, GENERATIONS.c.session_id, GENERATIONS.c.message_id
                )
            ).first()
            if row is None:
                continue
            released += 1
            ref = GenerationRef(lease.generation_id, row.owner_id, row.session_id)
            payload = {"attempt": lease.attempt - 1, "run_after": utcnow().isoformat(), "error": {"code": reason}}
            if row.message_id is not None:
                rules.generation_status_changed(session, lease.generation_id, RunStatus.queued.value)
            insert_events(
                session,
                event_rows(
                    ref, attempt=lease.attempt, last_sequence=row.event_seq, events=[(EventType.retrying, payload)]
                ),
            )
            notify.announce_work(session)
    return released


def retry_delay(
    attempt: int,
    *,
    retry_after: float | None = None,
    base: float = BACKOFF_BASE_SECONDS,
    cap: float = BACKOFF_CAP_SECONDS,
    rng: random.Random | None = None,
) -> float:
    """Seconds before attempt `attempt + 1`: the backend's retry_after when it gave one, else
    exponential backoff with jitter (between half and all of base * 2^(attempt-1), capped)."""
    if retry_after is not None and retry_after >= 0:
        return min(float(retry_after), cap)
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return ceiling * (0.5 + 0.5 * (rng or random).random())


@dataclass(frozen=True)
class Reaped:
    generation_id: uuid.UUID
    status: str
    attempt: int
    run_after: datetime | None


def reap(db: Database, *, backoff_base: float = BACKOFF_BASE_SECONDS, max_attempts_cap: int = 20) -> list[Reaped]:
    """Return generations whose lease expired to the queue, in one conditional UPDATE: with backoff
    and jitter while attempts remain, failed ('worker_lost') once they are spent, canceled when a
    cancel was requested. Writes their events. Unsuccessful ones are flagged for the sweeper."""
    now = utcnow()
    # Jitter per attempt count (SQL has no portable random timestamp arithmetic).
    delays = {n: now + timedelta(seconds=retry_delay(n, base=backoff_base)) for n in range(1, max_attempts_cap + 1)}
    run_after = case(
        *(
            (GENERATIONS.c.attempt == n, bindparam(f"run_after_{n}", at, type_=UTCDateTime()))
            for n, at in delays.items()
        ),
        else_=bindparam("run_after_cap", delays[max_attempts_cap], type_=UTCDateTime()),
    )
    exhausted = GENERATIONS.c.attempt >= GENERATIONS.c.max_attempts
    canceled = GENERATIONS.c.cancel_requested.is_(True)
    final = or_(exhausted, canceled)
    new_status = case(
        (canceled, RunStatus.canceled.value), (exhausted, RunStatus.failed.value), else_=RunStatus.queued.value
    )
    statement = (
        update(GENERATIONS)
        .where(
            GENERATIONS.c.id.in_(bindparam("reapable", expanding=True, type_=GENERATIONS.c.id.type)),
            GENERATIONS.c.status == RunStatus.processing.value,
            GENERATIONS.c.lease_expires_at < bindparam("now", now, type_=UTCDateTime()),
        )
        .values(
            status=new_status,
            running_slot=None,
            lease_owner=None,
            lease_expires_at=None,
            run_after=case((final, GENERATIONS.c.run_after), else_=run_after),
            completed_at=case((final, bindparam("completed", now, type_=UTCDateTime())), else_=None),
            error_code=case((canceled, None), else_=LOST_WORKER),
            error_message=case(
                (canceled, None),
                (exhausted, "the worker running this generation stopped responding, and no attempts are left"),
                else_="the worker running this generation stopped responding",
            ),
            # The lost attempt may have stored objects, and may still (it may be cut off, not dead).
            cleanup_pending=True,
            event_seq=GENERATIONS.c.event_seq + 1,
            updated_at=now,
        )
        .returning(
            GENERATIONS.c.id,
            GENERATIONS.c.owner_id,
            GENERATIONS.c.session_id,
            GENERATIONS.c.message_id,
            GENERATIONS.c.status,
            GENERATIONS.c.attempt,
            GENERATIONS.c.max_attempts,
            GENERATIONS.c.run_after,
            GENERATIONS.c.event_seq,
        )
    )
    reaped: list[Reaped] = []
    with db.writing() as session:
        reapable = _lock_reapable(session, now)
        if not reapable:
            return []
        rows = session.execute(statement, {"reapable": reapable}).all()
        events = []
        for row in rows:
            ref = GenerationRef(row.id, row.owner_id, row.session_id)
            error = {"code": LOST_WORKER, "message": "the worker running this generation stopped responding"}
            if row.status == RunStatus.queued:
                spec = (
                    EventType.retrying,
                    {"attempt": row.attempt, "run_after": row.run_after.isoformat(), "error": error},
                )
            elif row.status == RunStatus.failed:
                spec = (EventType.failed, {**error, "attempts": row.attempt})
            else:
                spec = (EventType.canceled, {})
            events += event_rows(ref, attempt=row.attempt, last_sequence=row.event_seq, events=[spec], at=now)
            if row.message_id is not None:
                rules.generation_status_changed(session, row.id, row.status)
            reaped.append(Reaped(row.id, row.status, row.attempt, row.run_after if row.status == "queued" else None))
        insert_events(session, events)
        if any(item.status == RunStatus.queued for item in reaped):
            notify.announce_work(session)
    for item in reaped:
        log.warning(
            "lease expired on generation %s (attempt %d): now %s", item.generation_id, item.attempt, item.status
        )
    return reaped


def _lock_reapable(session: Session, now: datetime) -> list[uuid.UUID]:
    """Lock expired generations, and their owners' event counters, without waiting for anything: a
    row or counter that a stuck transaction holds is left for a later round (by then the database
    has ended that transaction). The reaper is what frees a cut-off worker's generations; it must
    never queue behind that worker's locks."""
    expired = session.execute(
        select(GENERATIONS.c.id, GENERATIONS.c.owner_id)
        .where(GENERATIONS.c.status == RunStatus.processing.value, GENERATIONS.c.lease_expires_at < now)
        .order_by(GENERATIONS.c.lease_expires_at)
        .limit(REAP_BATCH)
        .with_for_update(skip_locked=True)
    ).all()
    if not expired:
        return []
    owners = {row.owner_id for row in expired}
    counted = set(session.scalars(select(COUNTERS.c.owner_id).where(COUNTERS.c.owner_id.in_(owners))))
    free = set(
        session.scalars(
            select(COUNTERS.c.owner_id)
            .where(COUNTERS.c.owner_id.in_(sorted(counted)))
            .order_by(COUNTERS.c.owner_id)
            .with_for_update(skip_locked=True)
        )
    )
    usable = free | (owners - counted)
    return [row.id for row in expired if row.owner_id in usable]


# ---- storage cleanup ----

FINAL_VALUES = [RunStatus.succeeded.value, RunStatus.failed.value, RunStatus.canceled.value]


def sweep(db: Database, storage: Storage, *, limit: int = 50) -> int:
    """Delete the objects of finished generations flagged cleanup_pending that no asset row points at
    (everything of an unsuccessful one; other attempts' leftovers of a successful one), then clear
    the flag. Only finished generations, so no attempt that may still succeed is touched. Safe to
    run anywhere, any number of times: deleting a missing object is not an error."""
    with db.reading() as session:
        ids = list(
            session.scalars(
                select(GENERATIONS.c.id)
                .where(GENERATIONS.c.cleanup_pending.is_(True), GENERATIONS.c.status.in_(FINAL_VALUES))
                .limit(limit)
            )
        )
        if not ids:
            return 0
        assets = Asset.__table__
        referenced = {
            key
            for row in session.execute(
                select(assets.c.storage_key, assets.c.thumbnail_key).where(assets.c.generation_id.in_(ids))
            )
            for key in row
            if key
        }
    for key in stored_objects(storage, ids):
        if key not in referenced:
            storage.delete(key)
    with db.writing() as session:
        done = session.scalars(
            update(GENERATIONS)
            .where(GENERATIONS.c.id.in_(ids), GENERATIONS.c.status.in_(FINAL_VALUES))
            .values(cleanup_pending=False)
            .returning(GENERATIONS.c.id)
        ).all()
        # Images kept for a batch that ended without success point at objects just deleted.
        if done:
            session.execute(delete(BatchImage.__table__).where(BatchImage.__table__.c.generation_id.in_(done)))
    return len(ids)
