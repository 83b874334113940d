"""The database rules that make a cut-off worker harmless, checked directly: session limits on every
PostgreSQL connection, fences on the lease's expiry, a reaper that never waits on a lock, and event
positions that concurrent writers hand out without gaps, repeats or reordering."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError

from imagestudio.config import Settings
from imagestudio.db import Database, SessionLimits, make_database
from imagestudio.generations import fenced, queue
from imagestudio.generations.events import append_event, events_after
from imagestudio.models import EventType, Generation
from imagestudio.models.types import utcnow
from tests import factories
from tests.generations.conftest import expire_lease, load, submit

BOUND_SECONDS = 60.0


def _claim(db: Database, worker: str = "w1", lease: float = 30.0) -> list[queue.ClaimedGeneration]:
    return queue.claim(db, worker_id=worker, limit=10, lease_seconds=lease, default_max_running=10)


def test_settings_derive_session_limits_from_the_lease_and_take_overrides(tmp_path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, lease_seconds=30)  # type: ignore[call-arg]
    limits = SessionLimits.from_settings(settings)
    # A dead peer's transaction ends well within one lease, and waiters outlive it.
    assert limits.idle_in_transaction == 10 and limits.lock_timeout == 15 and limits.statement_timeout == 30
    assert limits.tcp_user_timeout == 10 and limits.keepalive_idle + 3 * limits.keepalive_interval <= 15
    parameters = limits.libpq_parameters()
    assert parameters["keepalives"] == 1 and parameters["tcp_user_timeout"] == 10_000
    assert "-c idle_in_transaction_session_timeout=10000" in str(parameters["options"])
    custom = SessionLimits.from_settings(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp_path,
            db_idle_in_transaction_seconds=4,
            db_lock_timeout_seconds=0,
            db_statement_timeout_seconds=120,
            db_tcp_timeout_seconds=6,
        )
    )
    assert (custom.idle_in_transaction, custom.lock_timeout, custom.statement_timeout) == (4, 0, 120)
    assert (custom.tcp_user_timeout, custom.keepalive_idle, custom.keepalive_interval) == (6, 3, 1)
    assert SessionLimits.for_lease().without_statement_timeout().statement_timeout == 0
    maintenance = SessionLimits.for_lease().for_maintenance()
    assert (maintenance.statement_timeout, maintenance.idle_in_transaction, maintenance.lock_timeout) == (0, 0, 15)


# Row locks held by another session: SQLite has one writer at a time.
@pytest.mark.postgresql_only
def test_postgresql_sessions_carry_the_limits_and_a_dead_peer_s_locks_go(db: Database, user_id) -> None:
    limits = SessionLimits.for_lease(3.0)  # idle in transaction: 1 s
    stuck = make_database(db.engine.url.render_as_string(hide_password=False), limits=limits)
    try:
        with stuck.engine.connect() as connection:
            shown = {
                name: connection.execute(text(f"SHOW {name}")).scalar()
                for name in ("idle_in_transaction_session_timeout", "lock_timeout", "statement_timeout")
            }
            assert shown == {
                "idle_in_transaction_session_timeout": "1s",
                "lock_timeout": "1500ms",
                "statement_timeout": "5s",
            }
        # A peer takes a row lock and goes silent inside its transaction.
        peer = stuck.engine.connect()
        try:
            peer.begin()
            peer.execute(text("UPDATE users SET display_name = 'held' WHERE id = :id"), {"id": user_id})
            started = time.monotonic()
            # Another session waits on that row only until PostgreSQL ends the silent one.
            with db.writing() as session:
                session.execute(text("SET LOCAL lock_timeout = '60s'"))
                session.execute(text("UPDATE users SET display_name = 'free' WHERE id = :id"), {"id": user_id})
            assert time.monotonic() - started < BOUND_SECONDS
            with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):  # it never commits
                peer.commit()
        finally:
            peer.invalidate()
            peer.close()
    finally:
        stuck.dispose()
    with db.reading() as session:
        assert (
            session.execute(text("SELECT display_name FROM users WHERE id = :id"), {"id": user_id}).scalar() == "free"
        )


def test_an_expired_lease_fences_every_write_even_before_the_reaper_runs(db: Database, registry, settings, user_id):
    generation_id = submit(db, user_id, registry, settings)
    [claimed] = _claim(db)
    assert fenced.record_progress(db, claimed, 1, 4) is False
    expire_lease(db, generation_id)
    assert fenced.record_progress(db, claimed, 2, 4) is None
    assert queue.renew(db, [claimed.lease], 30.0) == {}, "an expired lease must not be revived"
    assert fenced.finish_failed(db, claimed, "provider_failed", "late") == fenced.Outcome.lost
    assert queue.release(db, [claimed.lease]) == 0
    generation = load(db, generation_id)
    assert (generation.status, generation.progress_step, generation.lease_owner) == ("processing", 1, "w1")
    assert [event.type for event in events_after(db, generation_id=generation_id)] == ["queued", "started", "progress"]
    # The reaper then returns it to the queue as usual.
    assert [item.status for item in queue.reap(db)] == ["queued"]


@pytest.mark.postgresql_only
def test_the_reaper_skips_what_a_stuck_transaction_holds_instead_of_waiting(db: Database, registry, settings):
    with db.writing() as session:
        alice, bob, carol = (factories.make_user(session).id for _ in range(3))
    locked_row, locked_counter, free = (submit(db, owner, registry, settings) for owner in (alice, bob, carol))
    _claim(db)
    for generation_id in (locked_row, locked_counter, free):
        expire_lease(db, generation_id)
    waiting = submit(db, bob, registry, settings)
    holder = db.engine.connect()
    try:
        holder.begin()
        holder.execute(text("SET LOCAL lock_timeout = 0"))
        holder.execute(select(Generation.id).where(Generation.id == locked_row).with_for_update())
        holder.execute(text("SELECT 1 FROM event_counters WHERE owner_id = :id FOR UPDATE"), {"id": bob})
        reaped = _in_thread(lambda: queue.reap(db))
        assert [item.generation_id for item in reaped] == [free]
        # Claims skip the held user as well, instead of queueing behind the holder.
        with db.writing() as session:
            session.execute(update(Generation).where(Generation.id == free).values(run_after=utcnow()))
        assert [claimed.id for claimed in _in_thread(lambda: _claim(db, worker="w2"))] == [free]
    finally:
        holder.rollback()
        holder.close()
    assert sorted(item.generation_id for item in queue.reap(db)) == sorted([locked_row, locked_counter])
    assert waiting in [claimed.id for claimed in _claim(db, worker="w3")]


def _in_thread(function):
    """Run function on a thread and fail (rather than hang) if it waits on a lock."""
    result: list = []
    thread = threading.Thread(target=lambda: result.append(function()), daemon=True)
    thread.start()
    thread.join(BOUND_SECONDS)
    assert not thread.is_alive(), "waited on a lock"
    return result[0]


def test_concurrent_event_writers_hand_out_positions_a_reader_never_skips(db: Database, registry, settings):
    with db.writing() as session:
        owners = [factories.make_user(session).id for _ in range(2)]
    generations = [submit(db, owners[index % 2], registry, settings) for index in range(6)]
    writes_per_generation = 15
    done = threading.Event()
    errors: list[BaseException] = []

    def write(generation_id: uuid.UUID) -> None:
        try:
            for step in range(writes_per_generation):
                with db.writing() as session:
                    append_event(session, generation_id, EventType.progress, {"step": step})
        except BaseException as error:  # surfaced below
            errors.append(error)

    seen: dict[uuid.UUID, list[int]] = {owner: [] for owner in owners}

    def follow() -> None:
        # A live reader, resuming from the last position it saw, as a stream does.
        while True:
            finished = done.is_set()
            for owner in owners:
                cursor = seen[owner][-1] if seen[owner] else 0
                seen[owner] += [event.position for event in events_after(db, owner_id=owner, after=cursor)]
            if finished:
                return

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    writers = [threading.Thread(target=write, args=(generation_id,)) for generation_id in generations]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(BOUND_SECONDS)
    done.set()
    reader.join(BOUND_SECONDS)
    assert not errors and not reader.is_alive()
    for owner in owners:
        stored = [event.position for event in events_after(db, owner_id=owner, limit=5000)]
        # 3 generations per owner: one 'queued' event each, then the writers' events.
        assert stored == list(range(1, 3 * (1 + writes_per_generation) + 1))
        assert seen[owner] == stored, "the live reader missed or repeated a position"
    for generation_id in generations:
        sequences = [event.sequence for event in events_after(db, generation_id=generation_id, limit=5000)]
        assert sequences == list(range(1, writes_per_generation + 2))
