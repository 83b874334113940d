"""What each fenced write of the lease holder records: the generation's row, its event (type, number,
attempt, payload), the assistant message that mirrors it, the session's counters and the wake-up
for idle workers. test_lease_fence.py covers the other side: a stale lease writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from imagestudio.db import Database
from imagestudio.generations import fenced, queue
from imagestudio.generations.events import events_after
from imagestudio.generations.fenced import Outcome
from imagestudio.models import Asset, ChatSession, Generation, Message
from imagestudio.models.types import utcnow
from imagestudio.notify import NotificationHub, attach
from imagestudio.storage.keys import output_key
from tests import factories
from tests.generations.conftest import load, submit
from tests.generations.test_queue import _output, claim


@pytest.fixture
def hub(db: Database) -> Iterator[NotificationHub]:
    """A hub hearing this database's commits, as a process's Container does."""
    hub = NotificationHub()
    detach = attach(db, hub)
    yield hub
    detach()


@pytest.fixture
def claimed_in_session(db: Database, registry, settings):
    """A claimed generation of a chat turn: (claimed, session id, assistant message id)."""
    with db.writing() as session:
        owner = factories.make_user(session)
        chat = factories.make_session(session, owner)
        message = factories.make_message(session, chat, role="assistant", content="")
        ids = (owner.id, chat.id, message.id)
    generation_id = submit(db, ids[0], registry, settings, session_id=ids[1], message_id=ids[2], num_images=2)
    [claimed] = claim(db, worker="holder")
    assert claimed.id == generation_id
    return claimed, ids[1], ids[2]


def _message_status(db: Database, message_id: uuid.UUID) -> str | None:
    with db.reading() as session:
        return session.scalar(select(Message.status).where(Message.id == message_id))


def _last_event(db: Database, generation_id: uuid.UUID):
    events = events_after(db, generation_id=generation_id)
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    return events[-1]


def _ended(db: Database, generation_id: uuid.UUID, status: str) -> Generation:
    generation = load(db, generation_id)
    assert generation.status == status
    assert generation.running_slot is None and generation.lease_expires_at is None
    assert generation.completed_at is not None and generation.duration_ms is not None
    assert generation.duration_ms >= 0
    assert generation.updated_at >= generation.started_at
    return generation


def test_progress_is_recorded_and_answers_whether_a_cancel_was_asked(db: Database, claimed_in_session) -> None:
    claimed, _, message_id = claimed_in_session
    assert fenced.record_progress(db, claimed, 2, 5) is False
    generation = load(db, claimed.id)
    assert (generation.progress_step, generation.progress_total, generation.event_seq) == (2, 5, 3)
    event = _last_event(db, claimed.id)
    assert (event.type, event.attempt, event.payload) == ("progress", 1, {"step": 2, "total": 5})
    with db.writing() as session:
        session.execute(update(Generation).where(Generation.id == claimed.id).values(cancel_requested=True))
    assert fenced.record_progress(db, claimed, 3, 5) is True
    assert load(db, claimed.id).progress_step == 3
    # A preview picture's facts, and the image of the batch the step belongs to, travel with the event.
    preview = {"storage_key": "previews/x.webp", "width": 32, "height": 32}
    assert fenced.record_progress(db, claimed, 4, 5, preview, batch_index=1) is True
    event = _last_event(db, claimed.id)
    assert event.payload == {"step": 4, "total": 5, "preview": preview, "batch_index": 1}
    assert fenced.record_progress(db, claimed, 5, 5, batch_index=0) is True
    assert _last_event(db, claimed.id).payload == {"step": 5, "total": 5, "batch_index": 0}
    assert _message_status(db, message_id) == "processing"


def test_success_records_outputs_events_the_message_and_the_session(
    db: Database, claimed_in_session, hub: NotificationHub
) -> None:
    claimed, session_id, message_id = claimed_in_session
    version = hub.work.version
    outputs = [_output(claimed, 0), _output(claimed, 1)]
    outcome = fenced.finish_succeeded(
        db,
        claimed,
        outputs,
        served_by="scripted",
        model="scripted-1",
        revised_prompt="a lighthouse, revised",
        cost=Decimal("0.04"),
        usage={"steps": 3},
        final_progress=(3, 3),
    )
    assert outcome == Outcome.done
    generation = _ended(db, claimed.id, "succeeded")
    assert (generation.served_by, generation.model, generation.cost) == ("scripted", "scripted-1", Decimal("0.04"))
    assert generation.usage == {"steps": 3} and generation.revised_prompt == "a lighthouse, revised"
    assert (generation.progress_step, generation.progress_total) == (3, 3)
    assert generation.error_code is None and generation.error_message is None
    with db.reading() as session:
        assets = session.scalars(select(Asset).where(Asset.generation_id == claimed.id).order_by(Asset.batch_index))
        stored = [(a.batch_index, a.storage_key, a.session_id, a.owner_id, a.kind, a.seed) for a in assets]
        chat = session.get(ChatSession, session_id)
        assert chat is not None
        image_count, thumbnail = chat.image_count, chat.thumbnail_asset_id
    assert stored == [
        (output.batch_index, output.storage_key, session_id, claimed.owner_id, "output", output.seed)
        for output in outputs
    ]
    events = events_after(db, generation_id=claimed.id)
    assert [event.type for event in events] == ["queued", "started", "progress", "output_stored",
                                                "output_stored", "succeeded"]  # fmt: skip
    assert events[2].payload == {"step": 3, "total": 3}
    assert [event.payload["batch_index"] for event in events[3:5]] == [0, 1]
    assert events[-1].payload["outputs"] == 2 and events[-1].payload["duration_ms"] == generation.duration_ms
    assert all(event.attempt == 1 for event in events[1:])
    assert generation.event_seq == len(events)
    # The cover is the newest image until the owner picks one: the batch's last.
    assert image_count == 2 and thumbnail == uuid.UUID(events[4].payload["asset_id"])
    assert _message_status(db, message_id) == "succeeded"
    assert hub.work.version > version  # a running slot is free: idle workers look again


def test_failure_records_the_error_event_and_message(db: Database, claimed_in_session, hub: NotificationHub) -> None:
    claimed, _, message_id = claimed_in_session
    version = hub.work.version
    assert fenced.finish_failed(db, claimed, "provider_failed", "it broke") == Outcome.done
    generation = _ended(db, claimed.id, "failed")
    assert (generation.error_code, generation.error_message) == ("provider_failed", "it broke")
    event = _last_event(db, claimed.id)
    assert (event.type, event.attempt) == ("failed", 1)
    assert event.payload == {"code": "provider_failed", "message": "it broke", "attempts": 1}
    assert _message_status(db, message_id) == "failed"
    assert hub.work.version > version


def test_cancel_records_the_end_event_and_message(db: Database, claimed_in_session, hub: NotificationHub) -> None:
    claimed, _, message_id = claimed_in_session
    version = hub.work.version
    before = load(db, claimed.id).updated_at
    assert fenced.finish_canceled(db, claimed) == Outcome.done
    generation = _ended(db, claimed.id, "canceled")
    assert generation.updated_at > before
    # Partial outputs of the canceled attempt are discarded: the sweeper is told to remove them.
    assert generation.cleanup_pending is True
    event = _last_event(db, claimed.id)
    assert (event.type, event.attempt, event.payload) == ("canceled", 1, {})
    assert _message_status(db, message_id) == "canceled"
    assert hub.work.version > version


def test_requeue_hands_the_generation_back_with_its_error(
    db: Database, claimed_in_session, hub: NotificationHub
) -> None:
    claimed, _, message_id = claimed_in_session
    version = hub.work.version
    run_after = (utcnow() + timedelta(seconds=30)).replace(microsecond=0)
    outcome = fenced.requeue(db, claimed, run_after=run_after, code="rate_limited", message="slow down")
    assert outcome == Outcome.done
    generation = load(db, claimed.id)
    assert (generation.status, generation.lease_owner, generation.lease_expires_at) == ("queued", None, None)
    assert generation.running_slot is None and generation.run_after == run_after
    assert (generation.error_code, generation.error_message, generation.attempt) == ("rate_limited", "slow down", 1)
    assert generation.cleanup_pending is True  # the requeued attempt may have stored objects
    event = _last_event(db, claimed.id)
    assert (event.type, event.attempt) == ("retrying", 1)
    assert event.payload == {
        "attempt": 1,
        "run_after": run_after.isoformat(),
        "error": {"code": "rate_limited", "message": "slow down"},
    }
    assert _message_status(db, message_id) == "queued"
    assert hub.work.version > version
    assert claim(db, worker="next") == []  # not before run_after


def test_success_and_requeue_give_way_to_a_requested_cancel(db: Database, claimed_in_session) -> None:
    claimed, _, message_id = claimed_in_session
    with db.writing() as session:
        session.execute(update(Generation).where(Generation.id == claimed.id).values(cancel_requested=True))
    events_before = len(events_after(db, generation_id=claimed.id))
    assert fenced.requeue(db, claimed, run_after=utcnow(), code="x", message="y") == Outcome.cancel_requested
    outcome = fenced.finish_succeeded(
        db, claimed, [_output(claimed)], served_by="s", model="m", revised_prompt=None, cost=None, usage={},
        final_progress=None,
    )  # fmt: skip
    assert outcome == Outcome.cancel_requested
    assert len(events_after(db, generation_id=claimed.id)) == events_before
    assert load(db, claimed.id).status == "processing"
    state = fenced.lease_state(db, claimed.id)
    assert state == fenced.LeaseState("processing", claimed.lease_owner, 1, True)
    assert fenced.lease_state(db, uuid.uuid4()) is None
    # The worker then takes the cancel path, and only then is it final.
    assert fenced.finish_canceled(db, claimed) == Outcome.done
    assert _message_status(db, message_id) == "canceled"


def test_a_cleanup_flag_is_swept_only_once_the_generation_is_final(db: Database, claimed_in_session, storage) -> None:
    claimed, _, _ = claimed_in_session
    # A worker that lost its lease flags the generation whatever its state...
    assert fenced.flag_cleanup(db, claimed.id) is True
    assert load(db, claimed.id).cleanup_pending is True
    # ...but the sweeper leaves a generation that may still succeed alone.
    assert queue.sweep(db, storage) == 0
    assert load(db, claimed.id).cleanup_pending is True
    assert fenced.finish_failed(db, claimed, "provider_failed", "no") == Outcome.done
    assert queue.sweep(db, storage) == 1
    assert load(db, claimed.id).cleanup_pending is False
    assert fenced.flag_cleanup(db, uuid.uuid4()) is False


def test_renew_extends_the_lease_from_now_and_only_while_processing(db: Database, claimed_in_session) -> None:
    claimed, _, _ = claimed_in_session
    before = utcnow()
    assert queue.renew(db, [claimed.lease], 120) == {claimed.id: False}
    after = utcnow()
    expires = load(db, claimed.id).lease_expires_at
    assert before + timedelta(seconds=120) <= expires <= after + timedelta(seconds=120)
    assert queue.renew(db, [], 120) == {}
    # Finished by its holder (same owner, same attempt): nothing left to renew.
    assert fenced.finish_canceled(db, claimed) == Outcome.done
    assert queue.renew(db, [claimed.lease], 120) == {}
    assert load(db, claimed.id).lease_expires_at is None


def test_sweep_clears_only_the_generations_it_swept(db: Database, registry, settings, storage, user_id) -> None:
    ids = [submit(db, user_id, registry, settings, num_images=1) for _ in range(3)]
    claimed = {generation.id: generation for generation in claim(db, worker="w", limit=3, max_running=3)}
    for generation_id in ids:
        assert fenced.finish_failed(db, claimed[generation_id], "provider_failed", "no") == Outcome.done
        assert fenced.flag_cleanup(db, generation_id) is True
        storage.put(output_key(generation_id, claimed[generation_id].attempt, 0), b"partial", "image/png")
    assert queue.sweep(db, storage, limit=1) == 1
    pending = [generation_id for generation_id in ids if load(db, generation_id).cleanup_pending]
    assert len(pending) == 2
    left = sorted(output_key(generation_id, claimed[generation_id].attempt, 0) for generation_id in pending)
    assert sorted(storage.list("")) == left
    assert queue.sweep(db, storage, limit=10) == 2
    assert list(storage.list("")) == [] and not any(load(db, i).cleanup_pending for i in ids)


def test_release_hands_back_exactly_the_leases_named_while_they_run(db: Database, registry, settings, user_id) -> None:
    first, second, third, fourth = (submit(db, user_id, registry, settings) for _ in range(4))
    claimed = {generation.id: generation for generation in claim(db, worker="leaving", limit=4, max_running=4)}
    assert fenced.finish_failed(db, claimed[third], "provider_failed", "no") == Outcome.done
    before = load(db, first).updated_at
    # The same worker holds the others at the same attempt: only the named one goes back.
    assert queue.release(db, [claimed[first].lease]) == 1
    released = load(db, first)
    assert (released.status, released.attempt, released.lease_owner) == ("queued", 0, None)
    assert released.running_slot is None and released.lease_expires_at is None
    assert released.run_after <= utcnow() and released.updated_at > before
    assert released.cleanup_pending is True  # the handed-back attempt may have stored objects
    assert (load(db, second).status, load(db, second).lease_owner) == ("processing", "leaving")
    event = _last_event(db, first)
    assert (event.type, event.attempt, event.payload["attempt"], event.payload["error"]) == (
        "retrying",
        1,
        0,
        {"code": "worker_shutdown"},
    )
    assert event.payload["run_after"] <= utcnow().isoformat()
    # A generation its holder already finished is skipped, and the rest are still handed back.
    assert queue.release(db, [claimed[third].lease, claimed[second].lease, claimed[fourth].lease], "draining") == 2
    assert load(db, third).status == "failed"
    for generation_id in (second, fourth):
        assert load(db, generation_id).status == "queued"
        assert _last_event(db, generation_id).payload["error"] == {"code": "draining"}


def test_release_puts_the_chat_turn_back_to_queued(db: Database, claimed_in_session) -> None:
    claimed, session_id, message_id = claimed_in_session
    assert queue.release(db, [claimed.lease]) == 1
    assert _message_status(db, message_id) == "queued"
    assert _last_event(db, claimed.id).session_id == session_id


def test_release_leaves_a_generation_whose_cancel_was_asked_to_its_worker(db: Database, claimed_in_session) -> None:
    claimed, _, _ = claimed_in_session
    with db.writing() as session:
        session.execute(update(Generation).where(Generation.id == claimed.id).values(cancel_requested=True))
    assert queue.release(db, [claimed.lease]) == 0
    generation = load(db, claimed.id)
    assert (generation.status, generation.lease_owner, generation.attempt) == ("processing", "holder", 1)


def test_a_write_and_its_events_carry_one_time(db: Database, claimed_in_session) -> None:
    """The row's updated_at and the event's created_at are the same moment, for a write that names no
    updated_at (progress) and for success (completed_at too)."""
    claimed, _, _ = claimed_in_session
    before = load(db, claimed.id).updated_at
    assert fenced.record_progress(db, claimed, 1, 2) is False
    generation = load(db, claimed.id)
    assert generation.updated_at > before
    assert _last_event(db, claimed.id).created_at == generation.updated_at
    assert fenced.finish_succeeded(
        db, claimed, [_output(claimed)], served_by="s", model="m", revised_prompt=None, cost=None, usage={},
        final_progress=(2, 2),
    ) == Outcome.done  # fmt: skip
    generation = load(db, claimed.id)
    events = events_after(db, generation_id=claimed.id)[-3:]
    assert [event.type for event in events] == ["progress", "output_stored", "succeeded"]
    assert {event.created_at for event in events} == {generation.updated_at} == {generation.completed_at}


def test_success_records_the_provider_s_last_step_and_no_own_key_unless_told(db: Database, claimed_in_session) -> None:
    claimed, _, _ = claimed_in_session
    # A provider may stop before its planned steps: the last progress event says where it got to.
    outcome = fenced.finish_succeeded(
        db, claimed, [], served_by="s", model="m", revised_prompt=None, cost=None, usage={}, final_progress=(4, 5)
    )
    assert outcome == Outcome.done
    generation = load(db, claimed.id)
    assert (generation.progress_step, generation.progress_total) == (4, 5)
    assert _last_event(db, claimed.id).type == "succeeded"
    assert events_after(db, generation_id=claimed.id)[-2].payload == {"step": 4, "total": 5}
    # Billed to the studio, not to the owner's own provider key, unless the worker says so.
    assert generation.own_key is False


def test_success_turns_only_its_own_kept_images_over(db: Database, registry, settings, user_id) -> None:
    ids = [submit(db, user_id, registry, settings, num_images=2) for _ in range(2)]
    claimed = {generation.id: generation for generation in claim(db, worker="w", limit=2, max_running=2)}
    for generation in claimed.values():
        for index in (0, 1):
            kept = fenced.KeptImage(_output(generation, index), 1, "scripted", "scripted-1", {}, None, None)
            assert fenced.keep_batch_image(db, generation, kept) is False
    done, other = claimed[ids[0]], claimed[ids[1]]
    outputs = [kept.output for kept in fenced.batch_images(db, done.id)]
    assert fenced.finish_succeeded(
        db, done, outputs, served_by="s", model="m", revised_prompt=None, cost=None, usage={}, final_progress=None
    ) == Outcome.done  # fmt: skip
    # The finished batch's kept images are its assets now; the other batch still has its own.
    assert fenced.batch_images(db, done.id) == []
    assert [kept.output.batch_index for kept in fenced.batch_images(db, other.id)] == [0, 1]
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Asset).where(Asset.generation_id == done.id)) == 2


def test_a_kept_image_comes_back_as_it_was_kept_and_tells_of_a_cancel(db: Database, claimed_in_session) -> None:
    """What a retry reuses is exactly what was kept: the image's keys, size and seed, and the provider's
    usage, price and revised prompt; keeping an image also answers whether a cancel was asked."""
    claimed, _, _ = claimed_in_session
    output = replace(_output(claimed, 1), seed=424242)
    kept = fenced.KeptImage(output, 1, "scripted", "scripted-1", {"images": 1}, Decimal("0.040000"), "a revised prompt")
    assert fenced.keep_batch_image(db, claimed, kept) is False
    assert fenced.batch_images(db, claimed.id) == [kept]
    with db.writing() as session:
        session.execute(update(Generation).where(Generation.id == claimed.id).values(cancel_requested=True))
    second = fenced.KeptImage(_output(claimed, 0), 1, "scripted", "scripted-1", {}, None, None)
    assert fenced.keep_batch_image(db, claimed, second) is True


def test_a_language_job_records_who_served_it(db: Database, claimed_in_session) -> None:
    claimed, _, _ = claimed_in_session
    done = fenced.finish_language_job(db, claimed, served_by="openai", model="m", usage={}, also=lambda session: None)
    assert done == Outcome.done
    generation = load(db, claimed.id)
    assert (generation.served_by, generation.status) == ("openai", "succeeded")


def test_a_language_job_writes_what_it_made_in_the_success_transaction(db: Database, claimed_in_session) -> None:
    claimed, _, message_id = claimed_in_session

    def write_reply(session: Session) -> None:
        session.execute(update(Message).where(Message.id == message_id).values(content="a reply"))

    outcome = fenced.finish_language_job(db, claimed, served_by="s", model="m", usage={"tokens": 3}, also=write_reply)
    assert outcome == Outcome.done
    with db.reading() as session:
        assert session.scalar(select(Message.content).where(Message.id == message_id)) == "a reply"
    assert load(db, claimed.id).usage == {"tokens": 3}


# ---- the reaper: what it writes for a lease that ran out ----

LOST = "the worker running this generation stopped responding"


def _expire(db: Database, generation_id: uuid.UUID, **values: object) -> None:
    with db.writing() as session:
        session.execute(
            update(Generation)
            .where(Generation.id == generation_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1), **values)
        )


def test_the_reaper_requeues_a_lost_attempt_with_its_error_event_message_and_wake_up(
    db: Database, claimed_in_session, hub: NotificationHub, caplog: pytest.LogCaptureFixture
) -> None:
    claimed, session_id, message_id = claimed_in_session
    version = hub.work.version
    _expire(db, claimed.id)
    with caplog.at_level("WARNING", logger="imagestudio.generations.queue"):
        [reaped] = queue.reap(db, backoff_base=30.0)
    generation = load(db, claimed.id)
    assert reaped == queue.Reaped(claimed.id, "queued", 1, generation.run_after)
    assert (generation.status, generation.lease_owner, generation.lease_expires_at) == ("queued", None, None)
    assert generation.running_slot is None and generation.completed_at is None
    assert (generation.error_code, generation.error_message) == ("worker_lost", LOST)
    assert generation.cleanup_pending is True  # the lost attempt may have stored objects
    assert generation.run_after > utcnow() + timedelta(seconds=10)
    event = _last_event(db, claimed.id)
    assert (event.type, event.attempt, event.session_id) == ("retrying", 1, session_id)
    assert event.payload == {
        "attempt": 1,
        "run_after": generation.run_after.isoformat(),
        "error": {"code": "worker_lost", "message": LOST},
    }
    assert event.created_at == generation.updated_at  # stamped with the reaper's clock
    assert _message_status(db, message_id) == "queued"
    assert hub.work.version > version  # idle workers look again (once run_after has passed)
    # The operator's log names the generation, its attempt and what became of it.
    assert [record.getMessage() for record in caplog.records] == [
        f"lease expired on generation {claimed.id} (attempt 1): now queued"
    ]


def test_the_reaper_fails_a_lost_last_attempt(db: Database, claimed_in_session, hub: NotificationHub) -> None:
    claimed, session_id, message_id = claimed_in_session
    run_after = load(db, claimed.id).run_after
    _expire(db, claimed.id, max_attempts=1)
    version = hub.work.version
    [reaped] = queue.reap(db, backoff_base=30.0)
    assert reaped == queue.Reaped(claimed.id, "failed", 1, None)
    generation = load(db, claimed.id)
    assert (generation.status, generation.lease_owner, generation.lease_expires_at) == ("failed", None, None)
    assert generation.running_slot is None and generation.run_after == run_after
    assert generation.completed_at == generation.updated_at
    assert (generation.error_code, generation.error_message) == ("worker_lost", f"{LOST}, and no attempts are left")
    event = _last_event(db, claimed.id)
    assert (event.type, event.attempt, event.session_id) == ("failed", 1, session_id)
    assert event.payload == {"code": "worker_lost", "message": LOST, "attempts": 1}
    assert _message_status(db, message_id) == "failed"
    assert hub.work.version == version  # nothing became claimable


def test_the_reaper_cancels_a_lost_attempt_whose_cancel_was_asked(db: Database, claimed_in_session) -> None:
    claimed, _, message_id = claimed_in_session
    run_after = load(db, claimed.id).run_after
    _expire(db, claimed.id, cancel_requested=True)
    [reaped] = queue.reap(db, backoff_base=30.0)
    assert reaped == queue.Reaped(claimed.id, "canceled", 1, None)
    generation = load(db, claimed.id)
    assert (generation.status, generation.lease_owner, generation.lease_expires_at) == ("canceled", None, None)
    # Final: it keeps its run_after (no backoff), is completed, and carries no error.
    assert generation.run_after == run_after and generation.completed_at == generation.updated_at
    assert (generation.error_code, generation.error_message) == (None, None)
    assert generation.cleanup_pending is True
    event = _last_event(db, claimed.id)
    assert (event.type, event.attempt, event.payload) == ("canceled", 1, {})
    assert _message_status(db, message_id) == "canceled"


def test_the_reaper_writes_an_event_for_every_generation_it_reaps(db: Database, registry, settings, user_id) -> None:
    ids = [submit(db, user_id, registry, settings) for _ in range(3)]
    claim(db, worker="gone", limit=3, max_running=3)
    for generation_id in ids:
        _expire(db, generation_id)
    assert sorted(item.generation_id for item in queue.reap(db)) == sorted(ids)
    for generation_id in ids:
        assert [event.type for event in events_after(db, generation_id=generation_id)] == [
            "queued",
            "started",
            "retrying",
        ]


def test_attempts_past_the_backoff_table_wait_the_last_entry_s_delay(db: Database, registry, settings, user_id):
    """Backoff is precomputed for attempts 1 to max_attempts_cap (20); a generation allowed more
    attempts waits as long as attempt 20 would (base * 2^19, with jitter) from then on."""
    generation_id = submit(db, user_id, registry, settings)
    claim(db)
    base = 1e-6  # attempt 20 waits between 0.26 and 0.52 s; attempt 21 would wait 0.52 to 1.05 s
    for attempt in (20, 21, 25):
        with db.writing() as session:
            session.execute(
                update(Generation)
                .where(Generation.id == generation_id)
                .values(status="processing", attempt=attempt, max_attempts=30, lease_owner="gone")
            )
        _expire(db, generation_id)
        before = utcnow()
        [reaped] = queue.reap(db, backoff_base=base)
        after = utcnow()
        assert (reaped.status, reaped.attempt) == ("queued", attempt)
        assert reaped.run_after is not None and reaped.run_after == load(db, generation_id).run_after
        assert (reaped.run_after - before).total_seconds() >= 0.5 * base * 2**19
        assert (reaped.run_after - after).total_seconds() <= base * 2**19


def test_the_reaper_returns_at_most_a_batch_per_round_oldest_lease_first(db: Database, user_id) -> None:
    expired = utcnow() - timedelta(minutes=5)
    with db.writing() as session:
        owner = session.get(factories.User, user_id)
        ids = [
            factories.make_generation(
                session,
                owner,
                status="processing",
                attempt=1,
                lease_owner="gone",
                lease_expires_at=expired + timedelta(milliseconds=n),
            ).id
            for n in range(queue.REAP_BATCH + 1)
        ]
    first = queue.reap(db)
    assert len(first) == queue.REAP_BATCH and ids[-1] not in {item.generation_id for item in first}
    assert [item.generation_id for item in queue.reap(db)] == [ids[-1]]
    assert queue.reap(db) == []


def test_sweep_removes_the_kept_batch_images_of_a_failed_generation_only(
    db: Database, registry, settings, storage, user_id
) -> None:
    failing, running = (submit(db, user_id, registry, settings, num_images=2) for _ in range(2))
    claimed = {generation.id: generation for generation in claim(db, worker="w", limit=2, max_running=2)}
    for generation_id in (failing, running):
        kept = fenced.KeptImage(_output(claimed[generation_id]), 1, "scripted", "scripted-1", {}, None, None)
        assert fenced.keep_batch_image(db, claimed[generation_id], kept) is False
        storage.put(kept.output.storage_key, b"kept", "image/png")
    assert fenced.finish_failed(db, claimed[failing], "provider_failed", "no") == Outcome.done
    assert fenced.flag_cleanup(db, failing) is True
    assert queue.sweep(db, storage) == 1
    assert fenced.batch_images(db, failing) == []
    [still_kept] = fenced.batch_images(db, running)
    assert list(storage.list("")) == [still_kept.output.storage_key]


def test_a_sweep_round_handles_at_most_fifty_generations(db: Database, storage, user_id) -> None:
    with db.writing() as session:
        owner = session.get(factories.User, user_id)
        for _ in range(51):
            factories.make_generation(session, owner, status="failed", attempt=1, cleanup_pending=True)
    assert queue.sweep(db, storage) == 50
    assert queue.sweep(db, storage) == 1
    assert queue.sweep(db, storage) == 0
