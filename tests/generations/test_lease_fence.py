"""The lease fence, one half at a time.

A worker's write must hold on (id, lease_owner, attempt, status). Two situations test each half
alone, so that dropping either half from the fence makes a test fail:

- the owner half: a worker releases its generation (shutting down gives the attempt back), another
  worker claims it at the *same* attempt number; the first worker's late writes differ only by owner.
- the attempt half: one worker process loses its lease to the reaper and then claims the same
  generation again itself; its stale handle differs from the new one only by attempt.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from imagestudio.db import Database
from imagestudio.generations import fenced, queue
from imagestudio.generations.events import events_after
from imagestudio.generations.fenced import Outcome
from imagestudio.models import Asset, Generation
from imagestudio.models.types import utcnow
from tests.generations.conftest import load, submit
from tests.generations.test_queue import _succeed, claim


def _expire(db: Database, generation_id: uuid.UUID) -> None:
    with db.writing() as session:
        session.execute(
            update(Generation)
            .where(Generation.id == generation_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1), run_after=utcnow() - timedelta(seconds=1))
        )


def _ready_now(db: Database, generation_id: uuid.UUID) -> None:
    with db.writing() as session:
        session.execute(
            update(Generation).where(Generation.id == generation_id).values(run_after=utcnow() - timedelta(seconds=1))
        )


def _same_attempt_other_owner(db: Database, registry, settings, user_id):
    """(stale, current): the same generation and attempt number, claimed by two different workers."""
    generation_id = submit(db, user_id, registry, settings)
    [stale] = claim(db, worker="leaving")
    assert queue.release(db, [stale.lease]) == 1
    _ready_now(db, generation_id)
    [current] = claim(db, worker="arriving")
    assert (current.id, current.attempt) == (stale.id, stale.attempt) == (generation_id, 1)
    return stale, current


def _same_owner_other_attempt(db: Database, registry, settings, user_id):
    """(stale, current): the same generation and worker, at attempts 1 and 2."""
    generation_id = submit(db, user_id, registry, settings)
    [stale] = claim(db, worker="same-worker")
    _expire(db, generation_id)
    [reaped] = queue.reap(db, backoff_base=0.0001)
    assert reaped.status == "queued"
    _ready_now(db, generation_id)
    [current] = claim(db, worker="same-worker")
    assert (current.lease_owner, current.attempt) == (stale.lease_owner, 2)
    return stale, current


SITUATIONS = {"owner": _same_attempt_other_owner, "attempt": _same_owner_other_attempt}


_WATCHED = (
    "status",
    "lease_owner",
    "attempt",
    "lease_expires_at",
    "run_after",
    "error_code",
    "error_message",
    "progress_step",
    "completed_at",
    "event_seq",
    "running_slot",
)


def _snapshot(db: Database, generation_id: uuid.UUID) -> dict:
    generation = load(db, generation_id)
    return {name: getattr(generation, name) for name in _WATCHED}


def _assert_untouched(db: Database, current, before: dict) -> None:
    after = _snapshot(db, current.id)
    assert after == before
    assert (after["status"], after["lease_owner"], after["attempt"]) == (
        "processing",
        current.lease_owner,
        current.attempt,
    )
    assert len(events_after(db, generation_id=current.id)) == before["event_seq"]
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Asset)) == 0


@pytest.mark.parametrize("half", sorted(SITUATIONS))
def test_a_stale_success_is_refused(db: Database, registry, settings, user_id, half: str) -> None:
    stale, current = SITUATIONS[half](db, registry, settings, user_id)
    before = _snapshot(db, current.id)
    assert _succeed(db, stale) == Outcome.lost
    _assert_untouched(db, current, before)
    # The current holder still finishes, exactly once.
    assert _succeed(db, current) == Outcome.done
    assert load(db, current.id).status == "succeeded"
    assert _succeed(db, current) == Outcome.lost


@pytest.mark.parametrize("half", sorted(SITUATIONS))
def test_stale_progress_failure_cancel_and_requeue_are_refused(
    db: Database, registry, settings, user_id, half: str
) -> None:
    stale, current = SITUATIONS[half](db, registry, settings, user_id)
    before = _snapshot(db, current.id)
    assert fenced.record_progress(db, stale, 1, 3) is None
    assert fenced.finish_failed(db, stale, "provider_failed", "late") == Outcome.lost
    assert fenced.finish_canceled(db, stale) == Outcome.lost
    assert fenced.requeue(db, stale, run_after=utcnow(), code="x", message="late") == Outcome.lost
    _assert_untouched(db, current, before)


@pytest.mark.parametrize("half", sorted(SITUATIONS))
def test_stale_renew_and_release_are_refused(db: Database, registry, settings, user_id, half: str) -> None:
    stale, current = SITUATIONS[half](db, registry, settings, user_id)
    before = _snapshot(db, current.id)
    assert queue.renew(db, [stale.lease], 3600) == {}
    assert queue.release(db, [stale.lease]) == 0
    _assert_untouched(db, current, before)
    # The holder's own renewal works: the refusals above were about the stale lease, not the row.
    assert queue.renew(db, [current.lease], 3600) == {current.id: False}


def _request_cancel(db: Database, generation_id: uuid.UUID) -> None:
    with db.writing() as session:
        session.execute(update(Generation).where(Generation.id == generation_id).values(cancel_requested=True))


@pytest.mark.parametrize("half", sorted(SITUATIONS))
def test_a_stale_handle_is_told_it_lost_even_when_a_cancel_is_pending(
    db: Database, registry, settings, user_id, half: str
) -> None:
    """A refused write asks why: the holder hears "cancel requested", anyone else "lost". Judging the
    stale handle by owner or attempt alone would tell it to cancel a generation it no longer runs."""
    stale, current = SITUATIONS[half](db, registry, settings, user_id)
    _request_cancel(db, current.id)
    before = _snapshot(db, current.id)
    assert _succeed(db, stale) == Outcome.lost
    assert fenced.requeue(db, stale, run_after=utcnow(), code="x", message="late") == Outcome.lost
    _assert_untouched(db, current, before)
    assert _succeed(db, current) == Outcome.cancel_requested
    assert fenced.requeue(db, current, run_after=utcnow(), code="x", message="again") == Outcome.cancel_requested


def test_an_expired_lease_is_lost_before_a_reaper_gets_to_it(db: Database, registry, settings, user_id) -> None:
    generation_id = submit(db, user_id, registry, settings)
    [held] = claim(db, worker="cut-off")
    _expire(db, generation_id)
    before = _snapshot(db, generation_id)
    # Still processing, same owner, same attempt: only the expiry says the lease is gone.
    assert (before["status"], before["lease_owner"], before["attempt"]) == ("processing", held.lease_owner, 1)
    assert queue.renew(db, [held.lease], 3600) == {}
    assert queue.release(db, [held.lease]) == 0  # handing it back would undo the lost attempt
    assert fenced.record_progress(db, held, 1, 3) is None
    assert _succeed(db, held) == Outcome.lost
    assert _snapshot(db, generation_id) == before


def test_a_lease_ends_at_its_expiry_instant(db: Database, registry, settings, user_id, monkeypatch) -> None:
    """A lease that expires at this very moment holds no more (a reaper may already count it gone)."""
    generation_id = submit(db, user_id, registry, settings)
    [held] = claim(db, worker="on-the-edge")
    instant = utcnow().replace(microsecond=0) + timedelta(seconds=5)
    with db.writing() as session:
        session.execute(update(Generation).where(Generation.id == generation_id).values(lease_expires_at=instant))
    before = _snapshot(db, generation_id)
    monkeypatch.setattr(fenced, "utcnow", lambda: instant)
    assert fenced.record_progress(db, held, 1, 3) is None
    assert _snapshot(db, generation_id) == before
    # A microsecond earlier the lease still holds.
    monkeypatch.setattr(fenced, "utcnow", lambda: instant - timedelta(microseconds=1))
    assert fenced.record_progress(db, held, 1, 3) is False


def test_each_shape_of_fenced_write_is_built_once() -> None:
    """Building and cache-keying the UPDATE costs more than running it: a worker's every progress
    event reuses one statement."""
    columns = ("progress_step", "progress_total", "updated_at")
    assert fenced._statement(columns, False) is fenced._statement(columns, False)
    assert fenced._statement(columns, True) is not fenced._statement(columns, False)
