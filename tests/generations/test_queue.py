"""The queue: claim order, fairness, exactly-once claiming, lease fencing, the reaper and the sweeper."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from imagestudio.db import Database
from imagestudio.generations import fenced, queue
from imagestudio.generations.events import COUNTERS, events_after
from imagestudio.generations.fenced import Outcome, StoredOutput
from imagestudio.models import Asset, Generation, GenerationEvent, GenerationInput
from imagestudio.models.types import utcnow
from imagestudio.storage.keys import output_key, thumbnail_key
from tests import factories
from tests.generations.conftest import expire_lease, load, submit


def claim(db: Database, worker: str = "w1", limit: int = 10, max_running: int = 2, lease: float = 30.0):
    return queue.claim(db, worker_id=worker, limit=limit, lease_seconds=lease, default_max_running=max_running)


def _output(claimed: queue.ClaimedGeneration, index: int = 0) -> StoredOutput:
    return StoredOutput(
        batch_index=index,
        storage_key=output_key(claimed.id, claimed.attempt, index),
        thumbnail_key=thumbnail_key(claimed.id, claimed.attempt, index),
        mime_type="image/png",
        bytes=10,
        width=64,
        height=64,
        sha256="0" * 64,
        seed=1,
    )


def _succeed(db: Database, claimed: queue.ClaimedGeneration) -> Outcome:
    return fenced.finish_succeeded(
        db,
        claimed,
        [_output(claimed)],
        served_by="scripted",
        model="scripted-1",
        revised_prompt=None,
        cost=None,
        usage={},
        final_progress=(3, 3),
    )


def test_claims_follow_priority_then_age_and_respect_run_after(db: Database, registry, settings) -> None:
    with db.writing() as session:
        owners = [factories.make_user(session).id for _ in range(4)]
    # One user each, so fairness does not reorder anything.
    old = submit(db, owners[0], registry, settings)
    new = submit(db, owners[1], registry, settings)
    urgent = submit(db, owners[2], registry, settings, priority=5)
    later = submit(db, owners[3], registry, settings, priority=9)
    with db.writing() as session:
        session.execute(
            update(Generation).where(Generation.id == later).values(run_after=utcnow() + timedelta(minutes=5))
        )
    claimed = claim(db, limit=10)
    assert [generation.id for generation in claimed] == [urgent, old, new]
    first = claimed[0]
    assert (first.attempt, first.lease_owner, first.event_seq) == (1, "w1", 2)
    generation = load(db, urgent)
    assert generation.status == "processing" and generation.lease_expires_at > utcnow()
    assert [event.type for event in events_after(db, generation_id=urgent)] == ["queued", "started"]
    assert claim(db) == []  # `later` waits for its run_after


def test_a_claim_for_named_providers_takes_only_their_generations(db: Database, registry, settings) -> None:
    with db.writing() as session:
        owners = [factories.make_user(session).id for _ in range(3)]
    builtin = submit(db, owners[0], registry, settings, provider="builtin")
    scripted = submit(db, owners[1], registry, settings, priority=5)
    also_scripted = submit(db, owners[2], registry, settings)
    take = {"worker_id": "w1", "lease_seconds": 30.0, "default_max_running": 2}
    assert queue.claim(db, limit=10, providers=[], **take) == []
    assert queue.claim(db, limit=10, providers=["nobody"], **take) == []
    claimed = queue.claim(db, limit=10, providers=["scripted"], **take)
    assert [generation.id for generation in claimed] == [scripted, also_scripted]
    assert load(db, builtin).status == "queued"
    [other] = queue.claim(db, limit=10, providers=["builtin", "scripted"], **take)
    assert (other.id, other.provider) == (builtin, "builtin")


def test_a_claimed_generation_carries_its_input_images(db: Database, registry, settings, user_id) -> None:
    with db.writing() as session:
        owner = session.get(factories.User, user_id)
        generation = factories.make_generation(session, owner, type="img2img")
        init = factories.make_upload(session, owner, "init")
        styles = [factories.make_upload(session, owner, "reference") for _ in range(2)]
        session.add(GenerationInput(generation_id=generation.id, asset_id=init.id, role="init"))
        for position, style in enumerate(styles):
            session.add(
                GenerationInput(generation_id=generation.id, asset_id=style.id, role="reference", position=position)
            )
        expected = [
            queue.InputRef(init.id, "init", 0, init.storage_key),
            *(queue.InputRef(style.id, "reference", n, style.storage_key) for n, style in enumerate(styles)),
        ]
        plain = factories.make_generation(session, owner).id
        generation_id = generation.id
    claimed = {generation.id: generation for generation in claim(db, limit=2)}
    assert claimed[generation_id].inputs == expected
    assert claimed[plain].inputs == []


def test_one_user_never_runs_more_than_their_allowance(db: Database, registry, settings) -> None:
    with db.writing() as session:
        busy = factories.make_user(session).id
        patient = factories.make_user(session).id
        generous = factories.make_user(session, max_running=3).id
    flood = [submit(db, busy, registry, settings, prompt=f"flood {n}") for n in range(50)]
    single = submit(db, patient, registry, settings, prompt="just one")
    extra = [submit(db, generous, registry, settings) for _ in range(5)]
    claimed = claim(db, limit=4)
    owners = Counter(generation.owner_id for generation in claimed)
    # The single request of the second user is served in the first round despite the older flood.
    assert single in {generation.id for generation in claimed}
    assert owners[busy] <= 2
    claimed += claim(db, limit=10)
    owners = Counter(generation.owner_id for generation in claimed)
    assert owners == Counter({busy: 2, patient: 1, generous: 3})
    assert claim(db, limit=10) == []  # everyone is at their allowance
    with db.reading() as session:
        slots = session.execute(
            select(Generation.owner_id, Generation.running_slot).where(Generation.running_slot.is_not(None))
        ).all()
    assert sorted(slot for owner, slot in slots if owner == busy) == [0, 1]
    # Finishing one frees exactly one slot, which the flood's next oldest takes.
    done = next(generation for generation in claimed if generation.owner_id == busy)
    assert _succeed(db, done) == Outcome.done
    [next_one] = claim(db, limit=10)
    assert next_one.owner_id == busy and next_one.id == flood[2]
    assert len(extra) == 5


def test_concurrent_claimers_take_each_generation_exactly_once(db: Database, registry, settings) -> None:
    with db.writing() as session:
        owners = [factories.make_user(session).id for _ in range(25)]
    with db.writing() as session:
        for n in range(500):
            factories.make_generation(session, session.get(factories.User, owners[n % 25]), provider="scripted")
    claimed_by: dict[str, list[uuid.UUID]] = {}
    peak_running = Counter()
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(name: str) -> None:
        mine = claimed_by.setdefault(name, [])
        barrier.wait()
        try:
            idle = 0
            while idle < 3:
                batch = queue.claim(db, worker_id=name, limit=8, lease_seconds=30, default_max_running=4)
                if not batch:
                    idle += 1
                    time.sleep(0.01)
                    continue
                idle = 0
                mine.extend(generation.id for generation in batch)
                with db.reading() as session:
                    running = session.execute(
                        select(Generation.owner_id, func.count())
                        .where(Generation.running_slot.is_not(None))
                        .group_by(Generation.owner_id)
                    ).all()
                for owner, count in running:
                    peak_running[owner] = max(peak_running[owner], count)
                for generation in batch:
                    assert _succeed(db, generation) == Outcome.done
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(f"worker-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = [generation_id for ids in claimed_by.values() for generation_id in ids]
    assert len(everything) == 500 and len(set(everything)) == 500
    assert max(peak_running.values()) <= 4
    with db.reading() as session:
        statuses = Counter(session.scalars(select(Generation.status)))
        attempts = set(session.scalars(select(Generation.attempt)))
    assert statuses == Counter({"succeeded": 500}) and attempts == {1}


def test_a_worker_that_lost_its_lease_cannot_write_anything(db: Database, registry, settings, user_id) -> None:
    generation_id = submit(db, user_id, registry, settings)
    [stale] = claim(db, worker="stale")
    expire_lease(db, generation_id)
    [reaped] = queue.reap(db, backoff_base=0.0001)
    assert reaped.status == "queued"
    time.sleep(0.01)
    [current] = claim(db, worker="current")
    assert current.attempt == 2
    events_before = len(events_after(db, generation_id=generation_id))
    # Every write the stale worker tries is refused and leaves no trace.
    assert fenced.record_progress(db, stale, 1, 3) is None
    assert _succeed(db, stale) == Outcome.lost
    assert fenced.finish_failed(db, stale, "provider_failed", "late") == Outcome.lost
    assert fenced.finish_canceled(db, stale) == Outcome.lost
    assert fenced.requeue(db, stale, run_after=utcnow(), code="x", message="y") == Outcome.lost
    assert queue.renew(db, [stale.lease], 30) == {}
    assert queue.release(db, [stale.lease]) == 0
    assert len(events_after(db, generation_id=generation_id)) == events_before
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Asset)) == 0
    assert load(db, generation_id).lease_owner == "current"
    # The current holder finishes normally.
    assert queue.renew(db, [current.lease], 30) == {generation_id: False}
    assert _succeed(db, current) == Outcome.done
    generation = load(db, generation_id)
    assert (generation.status, generation.attempt, generation.running_slot) == ("succeeded", 2, None)


def test_reaper_backs_off_then_fails_when_attempts_are_spent(db: Database, registry, settings, user_id) -> None:
    generation_id = submit(db, user_id, registry, settings)
    run_afters = []
    for attempt in (1, 2):
        [claimed] = claim(db)
        assert claimed.attempt == attempt
        expire_lease(db, generation_id)
        before = utcnow()
        [reaped] = queue.reap(db, backoff_base=0.5)
        after = utcnow()
        assert reaped.status == "queued" and reaped.attempt == attempt
        # Exponential backoff with jitter: between half and all of 0.5 * 2^(attempt-1) seconds after
        # the reaper's clock, which read somewhere between `before` and `after` (however slow the machine).
        assert (reaped.run_after - before).total_seconds() >= 0.25 * 2 ** (attempt - 1)
        assert (reaped.run_after - after).total_seconds() <= 0.5 * 2 ** (attempt - 1)
        run_afters.append(reaped.run_after)
        assert claim(db) == []  # not before run_after
        with db.writing() as session:
            session.execute(update(Generation).where(Generation.id == generation_id).values(run_after=utcnow()))
    [claimed] = claim(db)
    assert claimed.attempt == 3 == claimed.max_attempts
    expire_lease(db, generation_id)
    [reaped] = queue.reap(db)
    assert reaped.status == "failed"
    generation = load(db, generation_id)
    assert (generation.error_code, generation.attempt, generation.running_slot) == ("worker_lost", 3, None)
    assert generation.cleanup_pending and generation.completed_at is not None
    types = [event.type for event in events_after(db, generation_id=generation_id)]
    assert types == ["queued", "started", "retrying", "started", "retrying", "started", "failed"]
    assert queue.reap(db) == []


def test_reaper_cancels_expired_generations_whose_cancel_was_requested(db: Database, registry, settings, user_id):
    generation_id = submit(db, user_id, registry, settings)
    claim(db)
    with db.writing() as session:
        session.execute(update(Generation).where(Generation.id == generation_id).values(cancel_requested=True))
    expire_lease(db, generation_id)
    [reaped] = queue.reap(db)
    assert reaped.status == "canceled"
    assert load(db, generation_id).cleanup_pending


def test_sweeper_deletes_objects_left_by_crashed_attempts(db: Database, registry, settings, storage, user_id) -> None:
    generation_id = submit(db, user_id, registry, settings, num_images=2)
    keep = submit(db, user_id, registry, settings)
    claim(db)
    for index in range(2):
        storage.put(output_key(generation_id, 1, index), b"partial", "image/png")
        storage.put(thumbnail_key(generation_id, 1, index), b"partial", "image/webp")
    storage.put(output_key(keep, 1, 0), b"someone else's", "image/png")
    with db.writing() as session:
        session.execute(
            update(Generation)
            .where(Generation.id == generation_id)
            .values(max_attempts=1, lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert [item.status for item in queue.reap(db)] == ["failed"]
    assert queue.sweep(db, storage) == 1
    assert list(storage.list("")) == [output_key(keep, 1, 0)]
    assert not load(db, generation_id).cleanup_pending
    assert queue.sweep(db, storage) == 0


def test_sweeper_keeps_what_a_success_points_at_and_removes_a_lost_attempt_s_objects(
    db: Database, registry, settings, storage, user_id
) -> None:
    generation_id = submit(db, user_id, registry, settings)
    [lost] = claim(db, worker="cut-off", lease=30.0)
    storage.put(output_key(generation_id, 1, 0), b"lost attempt", "image/png")
    with db.writing() as session:
        session.execute(
            update(Generation)
            .where(Generation.id == generation_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert [item.status for item in queue.reap(db)] == ["queued"]
    with db.writing() as session:
        session.execute(update(Generation).where(Generation.id == generation_id).values(run_after=utcnow()))
    # Not final yet: the sweeper leaves every attempt alone.
    assert queue.sweep(db, storage) == 0
    [winner] = claim(db, worker="healthy")
    assert winner.attempt == 2
    winner_output = _output(winner)
    storage.put(winner_output.storage_key, b"winner", "image/png")
    storage.put(winner_output.thumbnail_key, b"thumbnail", "image/webp")
    assert _succeed(db, winner) == Outcome.done
    # The cut-off worker comes back: its fenced writes fail, and its late upload is its own key.
    assert fenced.record_progress(db, lost, 1, 2) is None
    storage.put(output_key(generation_id, 1, 1), b"late", "image/png")
    assert fenced.flag_cleanup(db, generation_id)
    assert queue.sweep(db, storage) == 1
    assert sorted(storage.list("")) == sorted([winner_output.storage_key, winner_output.thumbnail_key])
    assert storage.get(winner_output.storage_key) == b"winner"


def test_release_hands_work_back_without_spending_an_attempt(db: Database, registry, settings, user_id) -> None:
    generation_id = submit(db, user_id, registry, settings)
    [claimed] = claim(db)
    assert queue.release(db, [claimed.lease]) == 1
    generation = load(db, generation_id)
    assert (generation.status, generation.attempt, generation.lease_owner) == ("queued", 0, None)
    [again] = claim(db)
    assert again.attempt == 1


def test_events_are_numbered_in_order_and_replay_from_any_cursor(db: Database, registry, settings) -> None:
    with db.writing() as session:
        owner = factories.make_user(session)
        chat = factories.make_session(session, owner)
        other = factories.make_user(session)
        ids = (owner.id, chat.id, other.id)
    first = submit(db, ids[0], registry, settings, session_id=ids[1])
    second = submit(db, ids[0], registry, settings, session_id=ids[1])
    submit(db, ids[2], registry, settings)
    claimed = {generation.id: generation for generation in claim(db, limit=10)}
    assert fenced.record_progress(db, claimed[first], 1, 3) is False
    assert _succeed(db, claimed[first]) == Outcome.done
    assert fenced.finish_failed(db, claimed[second], "provider_failed", "no") == Outcome.done
    stream = events_after(db, session_id=ids[1])
    # One owner's positions: consecutive, no gaps, in commit order.
    assert [event.position for event in stream] == list(range(1, len(stream) + 1))
    for generation_id in (first, second):
        sequences = [event.sequence for event in stream if event.generation_id == generation_id]
        assert sequences == list(range(1, len(sequences) + 1))
    first_types = [event.type for event in stream if event.generation_id == first]
    assert first_types == ["queued", "started", "progress", "progress", "output_stored", "succeeded"]
    assert load(db, first).event_seq == 6
    # Resuming from any cursor gives exactly the rest, in order; filters scope the stream.
    middle = stream[3].position
    assert events_after(db, session_id=ids[1], after=middle) == stream[4:]
    assert events_after(db, session_id=ids[1], after=0, limit=2) == stream[:2]
    assert [event.position for event in events_after(db, owner_id=ids[2])] == [1, 2]
    assert all(event.owner_id == ids[2] for event in events_after(db, owner_id=ids[2]))
    assert events_after(db, owner_id=ids[2], session_id=ids[1]) == []
    with pytest.raises(ValueError):
        events_after(db)
    with db.reading() as session:
        total = session.scalar(select(func.count()).select_from(GenerationEvent))
    assert total == len(stream) + 2  # the third user's queued and started


class _DriverError(Exception):
    """What psycopg raises under SQLAlchemy's wrapper: an error with a SQLSTATE."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("sqlstate", "conflict"),
    [("55P03", True), ("40P01", True), ("40001", True), ("57014", False), ("53300", False), (None, False)],
)
def test_a_claim_retries_lock_conflicts_and_nothing_else(sqlstate: str | None, conflict: bool) -> None:
    """Lock timeouts, deadlocks and serialization failures mean another claimer won a race: retry.
    A canceled statement or a full server is not a race and must surface."""
    error = OperationalError("UPDATE generations", {}, _DriverError(sqlstate))
    assert queue._is_claim_conflict(error) is conflict


def test_a_claim_retries_a_taken_running_slot() -> None:
    # The running-slot unique index is the only one a claim can hit (SQLite has no SQLSTATE).
    assert queue._is_claim_conflict(IntegrityError("UPDATE generations", {}, _DriverError(None))) is True


def test_a_driver_error_without_a_sqlstate_is_not_a_claim_conflict() -> None:
    # sqlite3's errors carry no SQLSTATE: "database is locked" after the busy timeout must surface.
    error = OperationalError("UPDATE generations", {}, Exception("database is locked"))
    assert queue._is_claim_conflict(error) is False


def test_retry_delay_honours_retry_after_and_backs_off_with_jitter() -> None:
    rng = random.Random(1)
    assert queue.retry_delay(1, retry_after=7.5) == 7.5
    assert queue.retry_delay(1, retry_after=10_000) == 300.0
    assert queue.retry_delay(1, retry_after=10_000, cap=60.0) == 60.0
    # A backend asking for no wait, or for less than a second, gets exactly that.
    assert queue.retry_delay(5, retry_after=0) == 0.0
    assert queue.retry_delay(5, retry_after=0.25) == 0.25
    assert 16.0 <= queue.retry_delay(5, retry_after=-1) <= 32.0  # nonsense: backs off instead
    delays = [queue.retry_delay(attempt, base=2.0, rng=rng) for attempt in (1, 2, 3, 4)]
    for attempt, delay in zip((1, 2, 3, 4), delays, strict=True):
        assert 2.0 * 2 ** (attempt - 1) / 2 <= delay <= 2.0 * 2 ** (attempt - 1)
    assert len({queue.retry_delay(3, rng=rng) for _ in range(20)}) > 1  # jittered
    assert queue.retry_delay(30) <= 300.0


@pytest.mark.sqlite_only  # PostgreSQL plans from its statistics
def test_on_sqlite_a_claim_reads_only_the_head_of_the_queue(db: Database, registry, settings, user_id) -> None:
    """SQLite has no statistics to go by: the claim steers it to read the queue's head through the
    claim index and to find the rows it takes by primary key, never to sort every queued row (what
    keeps a claim as cheap with a million queued as with ten)."""
    submit(db, user_id, registry, settings)
    statements: list[tuple[str, tuple]] = []

    def capture(connection, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().startswith("WITH RECURSIVE"):
            statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        assert len(claim(db)) == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    [(statement, parameters)] = statements
    with db.reading() as session:
        plan = [row[3] for row in session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
    reads = {step for step in plan if step.split()[:2] in (["SCAN", "generations"], ["SEARCH", "generations"])}
    assert reads == {
        "SCAN generations USING INDEX ix_generations_claim",  # the head, in serving order
        "SEARCH generations USING INDEX sqlite_autoindex_generations_1 (id=?)",  # candidates and the update
        "SCAN generations USING COVERING INDEX uq_generations_owner_running_slot",  # running counts
    }


def _claims_while_held(db: Database, hold) -> tuple[bool, list[queue.ClaimedGeneration]]:
    """Claims once while another connection holds what `hold` selects FOR UPDATE; answers whether the
    claim waited on it (a claim that waits on a held row waits far longer than five seconds)."""
    claimed: list[list[queue.ClaimedGeneration]] = []
    with db.engine.connect() as other:
        other.execute(hold.with_for_update())
        claimer = threading.Thread(target=lambda: claimed.append(claim(db)))
        claimer.start()
        claimer.join(timeout=5.0)
        waited = claimer.is_alive()
        other.rollback()
    claimer.join()
    return waited, claimed[0]


@pytest.mark.postgresql_only  # SQLite has one writer at a time: no other transaction holds a row
def test_a_claim_skips_a_queued_row_another_transaction_holds(db: Database, registry, settings) -> None:
    """A stuck transaction holding a queued row (an admin's edit, a cut-off connection) never makes
    claimers wait: they take the other rows, and the held one once it is let go."""
    with db.writing() as session:
        owners = [factories.make_user(session).id for _ in range(2)]
    held = submit(db, owners[0], registry, settings, priority=5)
    free = submit(db, owners[1], registry, settings)
    waited, claimed = _claims_while_held(db, select(Generation.id).where(Generation.id == held))
    assert not waited
    assert [generation.id for generation in claimed] == [free]
    assert [generation.id for generation in claim(db)] == [held]


@pytest.mark.postgresql_only  # SQLite has one writer at a time: no other transaction holds a row
def test_a_claim_skips_a_user_whose_event_counter_another_transaction_holds(db: Database, registry, settings) -> None:
    """The claim writes each taken generation's 'started' event, which locks its owner's event
    counter: while a stuck transaction holds one user's counter, claimers serve everyone else."""
    with db.writing() as session:
        owners = [factories.make_user(session).id for _ in range(2)]
    stuck = submit(db, owners[0], registry, settings, priority=5)
    free = submit(db, owners[1], registry, settings)
    waited, claimed = _claims_while_held(db, select(COUNTERS.c.owner_id).where(COUNTERS.c.owner_id == owners[0]))
    assert not waited
    assert [generation.id for generation in claimed] == [free]
    assert [generation.id for generation in claim(db)] == [stuck]
