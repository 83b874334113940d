"""Every write a worker makes about a generation it claimed, each guarded by its lease.

Each function runs one transaction whose first statement is an UPDATE fenced by (id, lease_owner,
attempt, status=processing, lease not yet expired) that also numbers the events it writes. When the
fence does not hold (the lease expired, or the generation was reclaimed, reaped or finished
elsewhere) nothing at all is written and the caller learns it. Checking the expiry too matters for a
worker that was cut off: once its lease has run out it can write nothing, even before a reaper
got to the row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Update, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from imagestudio import notify
from imagestudio.db import Database
from imagestudio.generations.events import GENERATIONS, EventSpec, event_rows, insert_events
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.models import Asset, BatchImage, EventType, RunStatus, rules
from imagestudio.models.types import new_id, utcnow

ASSETS = Asset.__table__
INSERT_ASSETS = insert(ASSETS)
BATCH_IMAGES = BatchImage.__table__
_RETURNING = (GENERATIONS.c.event_seq, GENERATIONS.c.cancel_requested)


class Outcome(StrEnum):
    done = "done"
    # The lease is gone: someone else owns the generation now, or it was finished without us.
    lost = "lost"
    # A cancel arrived before success could be recorded; the caller runs the cancel path.
    cancel_requested = "cancel_requested"


@dataclass(frozen=True)
class StoredOutput:
    batch_index: int
    storage_key: str
    mime_type: str
    bytes: int
    width: int
    height: int
    sha256: str
    seed: int | None
    # Outputs get their thumbnail on its first request (assets/thumbnails.py), not from the worker.
    thumbnail_key: str | None = None


@dataclass(frozen=True)
class KeptImage:
    """One image of a batch stored before the batch is done (a row of batch_images)."""

    output: StoredOutput
    attempt: int
    provider: str
    model: str
    usage: dict
    cost: Decimal | None
    revised_prompt: str | None


@dataclass(frozen=True)
class LeaseState:
    status: str
    lease_owner: str | None
    attempt: int
    cancel_requested: bool


def _duration_ms(claimed: ClaimedGeneration, now: datetime) -> int:
    return max(0, int((now - claimed.started_at).total_seconds() * 1000))


# Built once per shape and reused: constructing and cache-keying an UPDATE costs more than running it.
_STATEMENTS: dict[tuple, Update] = {}


def _statement(columns: tuple[str, ...], unless_cancel_requested: bool) -> Update:
    key = (columns, unless_cancel_requested)
    statement = _STATEMENTS.get(key)
    if statement is None:
        # A bind compared with or assigned to a column takes that column's type (UUID, JSON, timestamp).
        where = [
            GENERATIONS.c.id == bindparam("fence_id"),
            GENERATIONS.c.lease_owner == bindparam("fence_owner"),
            GENERATIONS.c.attempt == bindparam("fence_attempt"),
            GENERATIONS.c.status == RunStatus.processing.value,
            GENERATIONS.c.lease_expires_at > bindparam("fence_now"),
        ]
        if unless_cancel_requested:
            where.append(GENERATIONS.c.cancel_requested.is_(False))
        values = {name: bindparam(f"set_{name}") for name in columns}
        values["event_seq"] = GENERATIONS.c.event_seq + bindparam("event_count")
        statement = _STATEMENTS[key] = update(GENERATIONS).where(*where).values(values).returning(*_RETURNING)
    return statement


def _fenced(
    session: Session,
    claimed: ClaimedGeneration,
    events: list[EventSpec],
    *,
    unless_cancel_requested: bool = False,
    **values,
):
    """Run the fenced UPDATE setting `values` and numbering `events`; (None, []) when the fence fails."""
    now = values.setdefault("updated_at", utcnow())
    columns = tuple(sorted(values))
    params = {f"set_{name}": values[name] for name in columns}
    params |= {
        "fence_id": claimed.id,
        "fence_owner": claimed.lease_owner,
        "fence_attempt": claimed.attempt,
        "fence_now": utcnow(),
        "event_count": len(events),
    }
    row = session.connection().execute(_statement(columns, unless_cancel_requested), params).first()
    if row is None:
        return None, []
    return row, event_rows(claimed.ref, attempt=claimed.attempt, last_sequence=row.event_seq, events=events, at=now)


def _status_changed(session: Session, claimed: ClaimedGeneration, status: RunStatus) -> None:
    # The rule only touches an assistant message linked to the generation; skip the no-op query.
    if claimed.message_id is not None:
        rules.generation_status_changed(session, claimed.id, status.value)


def record_progress(
    db: Database,
    claimed: ClaimedGeneration,
    step: int,
    total: int,
    preview: dict | None = None,
    *,
    batch_index: int | None = None,
) -> bool | None:
    """Write one progress event (with a stored preview picture's facts when given, and the output the
    step belongs to when the provider renders one image at a time). Returns whether a cancel was
    requested, or None when the lease is lost."""
    payload: dict = {"step": step, "total": total}
    if preview is not None:
        payload["preview"] = preview
    if batch_index is not None:
        payload["batch_index"] = batch_index
    with db.writing() as session:
        row, rows = _fenced(
            session,
            claimed,
            [(EventType.progress, payload)],
            progress_step=step,
            progress_total=total,
        )
        if row is None:
            return None
        insert_events(session, rows)
        return bool(row.cancel_requested)


def record_delta(db: Database, claimed: ClaimedGeneration, text: str, offset: int) -> bool | None:
    """Write one piece of a streamed answer (`offset`: its place, in characters, in this attempt's
    answer). Returns whether a cancel was requested, or None when the lease is lost."""
    with db.writing() as session:
        row, rows = _fenced(session, claimed, [(EventType.delta, {"text": text, "offset": offset})])
        if row is None:
            return None
        insert_events(session, rows)
        return bool(row.cancel_requested)


def keep_batch_image(db: Database, claimed: ClaimedGeneration, kept: KeptImage) -> bool | None:
    """Record one stored image of a batch, so a retry does not make it again. Returns whether a
    cancel was requested, or None when the lease is lost (nothing was written)."""
    output = kept.output
    with db.writing() as session:
        row, _ = _fenced(session, claimed, [])
        if row is None:
            return None
        session.execute(
            insert(BATCH_IMAGES).values(
                id=new_id(),
                generation_id=claimed.id,
                batch_index=output.batch_index,
                attempt=kept.attempt,
                provider=kept.provider,
                model=kept.model,
                storage_key=output.storage_key,
                thumbnail_key=output.thumbnail_key,
                mime_type=output.mime_type,
                bytes=output.bytes,
                width=output.width,
                height=output.height,
                sha256=output.sha256,
                seed=output.seed,
                usage=kept.usage,
                cost=kept.cost,
                revised_prompt=kept.revised_prompt,
                created_at=utcnow(),
            )
        )
        return bool(row.cancel_requested)


def drop_batch_images(db: Database, claimed: ClaimedGeneration, indices: list[int]) -> bool:
    """Forget kept images this run will not use (another provider or model made them); their objects
    go with the sweeper. False when the lease is lost."""
    with db.writing() as session:
        row, _ = _fenced(session, claimed, [])
        if row is None:
            return False
        session.execute(
            delete(BATCH_IMAGES).where(
                BATCH_IMAGES.c.generation_id == claimed.id, BATCH_IMAGES.c.batch_index.in_(indices)
            )
        )
        return True


def batch_images(db: Database, generation_id: uuid.UUID) -> list[KeptImage]:
    """The images of a generation's batch that earlier attempts (or this one) stored, by index."""
    with db.reading() as session:
        rows = session.execute(
            select(BATCH_IMAGES)
            .where(BATCH_IMAGES.c.generation_id == generation_id)
            .order_by(BATCH_IMAGES.c.batch_index)
        ).all()
    return [
        KeptImage(
            output=StoredOutput(
                batch_index=row.batch_index,
                storage_key=row.storage_key,
                thumbnail_key=row.thumbnail_key,
                mime_type=row.mime_type,
                bytes=row.bytes,
                width=row.width,
                height=row.height,
                sha256=row.sha256,
                seed=row.seed,
            ),
            attempt=row.attempt,
            provider=row.provider,
            model=row.model,
            usage=dict(row.usage or {}),
            cost=row.cost,
            revised_prompt=row.revised_prompt,
        )
        for row in rows
    ]


def record_prompt(
    db: Database, claimed: ClaimedGeneration, *, sent_prompt: str | None, method: str, plan: dict
) -> bool:
    """Record the prompt a worker decided to send and how it was made. False when the lease is lost."""
    with db.writing() as session:
        row, _ = _fenced(session, claimed, [], enhanced_prompt=sent_prompt, prompt_method=method, prompt_plan=plan)
        return row is not None


def finish_language_job(
    db: Database,
    claimed: ClaimedGeneration,
    *,
    served_by: str,
    model: str,
    usage: dict,
    also: Callable[[Session], None],
) -> Outcome:
    """Success of a job that makes no image (a caption, a reply, UI code): `also` writes what it made."""
    return finish_succeeded(
        db,
        claimed,
        [],
        served_by=served_by,
        model=model,
        revised_prompt=None,
        cost=None,
        usage=usage,
        final_progress=None,
        also=also,
    )


def finish_succeeded(
    db: Database,
    claimed: ClaimedGeneration,
    outputs: list[StoredOutput],
    *,
    served_by: str,
    model: str,
    revised_prompt: str | None,
    cost: Decimal | None,
    usage: dict,
    final_progress: tuple[int, int] | None,
    also: Callable[[Session], None] | None = None,
    own_key: bool = False,
) -> Outcome:
    """Record outputs, their events and success in one transaction, unless a cancel got there first.
    `also` writes what else the job produced (a caption's text) in that transaction, once the fence holds."""
    now = utcnow()
    # Each output with the id of the asset it becomes.
    stored = [(new_id(), output) for output in outputs]
    events: list[EventSpec] = []
    if final_progress is not None:
        events.append((EventType.progress, {"step": final_progress[0], "total": final_progress[1]}))
    events += [
        (EventType.output_stored, {"asset_id": str(asset_id), "batch_index": output.batch_index})
        for asset_id, output in stored
    ]
    duration = _duration_ms(claimed, now)
    events.append((EventType.succeeded, {"outputs": len(outputs), "duration_ms": duration}))
    values: dict = {
        "status": RunStatus.succeeded.value,
        "running_slot": None,
        "lease_expires_at": None,
        "completed_at": now,
        "duration_ms": duration,
        "served_by": served_by,
        "model": model,
        "cost": cost,
        "usage": usage,
        "own_key": own_key,
        "error_code": None,
        "error_message": None,
        "updated_at": now,
    }
    if revised_prompt:
        values["revised_prompt"] = revised_prompt
    if final_progress is not None:
        values["progress_step"], values["progress_total"] = final_progress
    with db.writing() as session:
        row, rows = _fenced(session, claimed, events, unless_cancel_requested=True, **values)
        if row is None:
            state = _state(session, claimed.id)
            if state is not None and _holds(state, claimed) and state.cancel_requested:
                return Outcome.cancel_requested
            return Outcome.lost
        assets = [
            {
                "id": asset_id,
                "owner_id": claimed.owner_id,
                "session_id": claimed.session_id,
                "generation_id": claimed.id,
                "batch_index": output.batch_index,
                "kind": "output",
                "storage_key": output.storage_key,
                "thumbnail_key": output.thumbnail_key,
                "mime_type": output.mime_type,
                "bytes": output.bytes,
                "width": output.width,
                "height": output.height,
                "sha256": output.sha256,
                "seed": output.seed,
                "created_at": now,
                "updated_at": now,
            }
            for asset_id, output in stored
        ]
        # Kept images of the batch are assets now (or, made by another provider, the sweeper's).
        session.execute(delete(BATCH_IMAGES).where(BATCH_IMAGES.c.generation_id == claimed.id))
        if assets:  # a caption job has none
            session.connection().execute(INSERT_ASSETS, assets)
        if claimed.session_id is not None:
            for values_ in assets:
                rules.output_added(session, Asset(**values_))
        if also is not None:
            also(session)
        _status_changed(session, claimed, RunStatus.succeeded)
        insert_events(session, rows)
        notify.announce_work(session)  # a running slot is free again
    return Outcome.done


def finish_failed(db: Database, claimed: ClaimedGeneration, code: str, message: str) -> Outcome:
    event = (EventType.failed, {"code": code, "message": message, "attempts": claimed.attempt})
    return _finish_final(db, claimed, RunStatus.failed, event, error_code=code, error_message=message)


def finish_canceled(db: Database, claimed: ClaimedGeneration) -> Outcome:
    return _finish_final(db, claimed, RunStatus.canceled, (EventType.canceled, {}))


def _finish_final(
    db: Database, claimed: ClaimedGeneration, status: RunStatus, event: EventSpec, **columns: object
) -> Outcome:
    """End a generation that made nothing (failed or canceled): out of the running slot and the lease,
    its partial files left for the sweeper, its event written and a worker woken for the next job."""
    now = utcnow()
    with db.writing() as session:
        row, rows = _fenced(
            session,
            claimed,
            [event],
            status=status.value,
            running_slot=None,
            lease_expires_at=None,
            completed_at=now,
            duration_ms=_duration_ms(claimed, now),
            cleanup_pending=True,
            updated_at=now,
            **columns,
        )
        if row is None:
            return Outcome.lost
        _status_changed(session, claimed, status)
        insert_events(session, rows)
        notify.announce_work(session)
    return Outcome.done


def requeue(db: Database, claimed: ClaimedGeneration, *, run_after: datetime, code: str, message: str) -> Outcome:
    """Back to the queue for another attempt after run_after (a transient failure)."""
    payload = {
        "attempt": claimed.attempt,
        "run_after": run_after.isoformat(),
        "error": {"code": code, "message": message},
    }
    with db.writing() as session:
        row, rows = _fenced(
            session,
            claimed,
            [(EventType.retrying, payload)],
            unless_cancel_requested=True,
            status=RunStatus.queued.value,
            running_slot=None,
            lease_owner=None,
            lease_expires_at=None,
            run_after=run_after,
            error_code=code,
            error_message=message,
            # This attempt may have stored some outputs: the sweeper removes them once it is final.
            cleanup_pending=True,
        )
        if row is None:
            state = _state(session, claimed.id)
            if state is not None and _holds(state, claimed) and state.cancel_requested:
                return Outcome.cancel_requested
            return Outcome.lost
        _status_changed(session, claimed, RunStatus.queued)
        insert_events(session, rows)
        notify.announce_work(session)
    return Outcome.done


def lease_state(db: Database, generation_id: uuid.UUID) -> LeaseState | None:
    with db.reading() as session:
        return _state(session, generation_id)


def _state(session: Session, generation_id: uuid.UUID) -> LeaseState | None:
    row = session.execute(
        select(
            GENERATIONS.c.status, GENERATIONS.c.lease_owner, GENERATIONS.c.attempt, GENERATIONS.c.cancel_requested
        ).where(GENERATIONS.c.id == generation_id)
    ).first()
    return LeaseState(*row) if row is not None else None


def _holds(state: LeaseState, claimed: ClaimedGeneration) -> bool:
    return (
        state.status == RunStatus.processing
        and state.lease_owner == claimed.lease_owner
        and state.attempt == claimed.attempt
    )


def flag_cleanup(db: Database, generation_id: uuid.UUID) -> bool:
    """Ask the sweeper to look at this generation's objects again (a worker that lost its lease may
    have stored objects after the last sweep; the sweeper keeps whatever an asset row points at)."""
    with db.writing() as session:
        result = session.execute(
            update(GENERATIONS).where(GENERATIONS.c.id == generation_id).values(cleanup_pending=True)
        )
        return bool(result.rowcount)
