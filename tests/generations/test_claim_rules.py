"""How a worker claims: how many, for which providers, how deep into the queue one claim looks,
what a claimed generation carries (its inputs, its 'started' event), and how a claim that loses a
race retries."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from imagestudio.db import Database
from imagestudio.generations import queue
from imagestudio.generations.events import events_after
from imagestudio.models import GenerationInput
from imagestudio.models.types import new_id
from tests import factories
from tests.generations.conftest import load


def claim(db: Database, limit: int = 10, providers: list[str] | None = None) -> list[queue.ClaimedGeneration]:
    return queue.claim(db, worker_id="w1", limit=limit, lease_seconds=30.0, default_max_running=2, providers=providers)


def _queue_for_new_users(db: Database, count: int, **values: object) -> list[uuid.UUID]:
    """One ready generation each for `count` new users, oldest first."""
    with db.writing() as session:
        owners = [factories.make_user(session) for _ in range(count)]
        return [factories.make_generation(session, owner, **values).id for owner in owners]


def test_a_claim_takes_at_most_its_limit_oldest_first(db: Database) -> None:
    ids = _queue_for_new_users(db, 3)
    assert claim(db, limit=0) == []
    assert [generation.id for generation in claim(db, limit=1)] == ids[:1]
    assert [generation.id for generation in claim(db, limit=2)] == ids[1:]


def test_a_claim_of_many_takes_that_many_from_as_many_users(db: Database) -> None:
    # Twenty users with one ready generation each: a claim of twenty takes them all at once.
    ids = _queue_for_new_users(db, 20)
    assert sorted(generation.id for generation in claim(db, limit=20)) == sorted(ids)


def test_a_claim_takes_only_the_providers_it_serves(db: Database) -> None:
    [builtin] = _queue_for_new_users(db, 1, provider="builtin")
    [scripted] = _queue_for_new_users(db, 1, provider="scripted")
    assert claim(db, providers=[]) == []
    assert [generation.id for generation in claim(db, providers=["scripted"])] == [scripted]
    assert claim(db, providers=["scripted"]) == []
    assert load(db, builtin).status == "queued"
    assert [generation.id for generation in claim(db, providers=None)] == [builtin]


def test_one_claim_looks_a_bounded_depth_into_the_queue_and_the_next_looks_past_full_users(db: Database) -> None:
    # A claim of twenty reads the first max(64, 8 x 20) = 160 ready rows in serving order.
    ids = sorted(new_id() for _ in range(167))
    with db.writing() as session:
        flood, late, last = (factories.make_user(session) for _ in range(3))
        for position, generation_id in enumerate(ids):
            owner = {150: late, 166: last}.get(position, flood)
            factories.make_generation(session, owner, id=generation_id)
    # Deeper than 64 rows: `late` (the 151st) is served in the first claim; `last` (the 167th) is not.
    first = claim(db, limit=20)
    assert sorted(generation.id for generation in first) == [ids[0], ids[1], ids[150]]
    # The flood's user is at their allowance now, so the next claim looks past their backlog.
    assert [generation.id for generation in claim(db, limit=20)] == [ids[166]]


def test_a_claimed_generation_carries_its_inputs(db: Database) -> None:
    with db.writing() as session:
        owner = factories.make_user(session)
        plain = factories.make_generation(session, owner).id
        edit = factories.make_generation(session, owner, type="img2img")
        uploads = [factories.make_upload(session, owner) for _ in range(3)]
        session.add(GenerationInput(generation_id=edit.id, asset_id=uploads[0].id, role="reference", position=1))
        session.add(GenerationInput(generation_id=edit.id, asset_id=uploads[1].id, role="init", position=0))
        session.add(GenerationInput(generation_id=edit.id, asset_id=uploads[2].id, role="reference", position=0))
        refs = [(upload.id, upload.storage_key) for upload in uploads]
        edit_id = edit.id
    claimed = {generation.id: generation for generation in claim(db)}
    assert claimed[plain].inputs == []
    assert claimed[edit_id].inputs == [
        queue.InputRef(refs[1][0], "init", 0, refs[1][1]),
        queue.InputRef(refs[2][0], "reference", 0, refs[2][1]),
        queue.InputRef(refs[0][0], "reference", 1, refs[0][1]),
    ]


def test_the_started_event_names_the_attempt_the_worker_and_the_start_time(db: Database) -> None:
    [generation_id] = _queue_for_new_users(db, 1)
    [claimed] = claim(db)
    started = [event for event in events_after(db, generation_id=generation_id) if event.type == "started"]
    assert [(event.attempt, event.payload) for event in started] == [(1, {"attempt": 1, "worker": "w1"})]
    assert started[0].created_at == claimed.started_at == load(db, generation_id).started_at


# ---- retries: faults raised by the database itself, from a trigger on the claim's UPDATE ----

_SQLITE_FAULT = """CREATE TRIGGER claim_fault BEFORE UPDATE OF status ON generations
WHEN EXISTS (SELECT 1 FROM claim_faults) BEGIN SELECT RAISE(ABORT, 'running slot taken'); END"""
# A statement the database cannot run: SQLite reports it as an OperationalError, as it does a
# locked database, and it is no race.
_SQLITE_BROKEN = """CREATE TRIGGER claim_fault BEFORE UPDATE OF status ON generations
WHEN EXISTS (SELECT 1 FROM claim_faults) BEGIN SELECT * FROM no_such_table; END"""
_POSTGRES_FAULT = """CREATE FUNCTION claim_fault() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM claim_faults) THEN
        RAISE EXCEPTION 'claim fault' USING ERRCODE = (SELECT sqlstate FROM claim_faults LIMIT 1);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER claim_fault BEFORE UPDATE OF status ON generations
FOR EACH ROW EXECUTE FUNCTION claim_fault()"""


@contextmanager
def _claim_faults(db: Database, conflict: bool) -> Iterator[None]:
    """While claim_faults has a row, the claim's UPDATE fails: with a unique violation (a claim
    conflict) or, when not `conflict`, with an error that is no race."""
    postgres = db.dialect == "postgresql"
    sqlstate = "23505" if conflict else "57014"  # unique_violation, query_canceled
    with db.engine.begin() as connection:
        connection.execute(text("CREATE TABLE claim_faults (sqlstate VARCHAR(5))"))
        connection.execute(text("INSERT INTO claim_faults VALUES (:s)"), {"s": sqlstate})
        if postgres:
            connection.exec_driver_sql(_POSTGRES_FAULT)
        else:
            connection.execute(text(_SQLITE_FAULT if conflict else _SQLITE_BROKEN))
    try:
        yield
    finally:
        with db.engine.begin() as connection:
            connection.execute(text("DROP TRIGGER claim_fault" + (" ON generations" if postgres else "")))
            if postgres:
                connection.execute(text("DROP FUNCTION claim_fault()"))
            connection.execute(text("DROP TABLE claim_faults"))


def _clear_faults(db: Database) -> None:
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM claim_faults"))


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses a claim takes between tries (recorded, not slept); the jitter is seeded."""
    taken: list[float] = []
    monkeypatch.setattr(queue.time, "sleep", taken.append)
    monkeypatch.setattr(queue, "random", random.Random(20))
    return taken


def _within_backoff(pauses: list[float]) -> bool:
    """The n-th pause (from 1) lies between 0.5 and 3 ms times n: short, and growing with each try."""
    return all(0.0005 * n <= pause <= 0.003 * n for n, pause in enumerate(pauses, start=1))


def test_a_claim_that_loses_a_running_slot_race_tries_again(
    db: Database, pauses: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    [generation_id] = _queue_for_new_users(db, 1)

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:  # the other claimers have moved on
            _clear_faults(db)

    with _claim_faults(db, conflict=True):
        monkeypatch.setattr(queue.time, "sleep", pause)
        assert [generation.id for generation in claim(db)] == [generation_id]
    assert len(pauses) == 3 and _within_backoff(pauses)
    assert load(db, generation_id).attempt == 1


def test_a_claim_gives_up_after_its_tries_are_spent(db: Database, pauses: list[float]) -> None:
    [generation_id] = _queue_for_new_users(db, 1)
    with _claim_faults(db, conflict=True), pytest.raises(IntegrityError):
        claim(db)
    assert len(pauses) == queue.CLAIM_ATTEMPTS - 1 == 19 and _within_backoff(pauses)
    generation = load(db, generation_id)
    assert (generation.status, generation.attempt) == ("queued", 0)


def test_a_claim_error_that_is_no_race_surfaces_at_once(db: Database, pauses: list[float]) -> None:
    _queue_for_new_users(db, 1)
    with _claim_faults(db, conflict=False), pytest.raises(OperationalError):
        claim(db)
    assert pauses == []
