"""Creating, canceling, retrying and deleting generations, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid

import pytest
from sqlalchemy import func, select

from imagestudio.db import Database
from imagestudio.generations import fenced, queue
from imagestudio.generations.errors import (
    GenerationNotFound,
    IdempotencyConflict,
    InvalidGenerationRequest,
    InvalidGenerationState,
)
from imagestudio.generations.events import events_after
from imagestudio.generations.service import (
    delete_generation,
    output_key,
    request_cancel,
    retry_generation,
    thumbnail_key,
)
from imagestudio.models import ChatSession, Generation, GenerationInput, Message, ProviderRecord
from tests import factories
from tests.generations.conftest import load, submit


def _claim_one(db: Database, settings) -> queue.ClaimedGeneration:
    [claimed] = queue.claim(db, worker_id="test-worker", limit=1, lease_seconds=30, default_max_running=2)
    return claimed


def test_create_queues_the_generation_and_mirrors_it_in_the_session(db: Database, registry, settings) -> None:
    with db.writing() as session:
        owner = factories.make_user(session)
        chat = factories.make_session(session, owner)
        message = factories.make_message(session, chat, role="assistant", content="")
        ids = (owner.id, chat.id, message.id)
    generation_id = submit(
        db, ids[0], registry, settings, prompt="a red door", session_id=ids[1], message_id=ids[2], num_images=2
    )
    generation = load(db, generation_id)
    assert (generation.status, generation.attempt, generation.event_seq) == ("queued", 0, 1)
    assert (generation.width, generation.height, generation.num_images) == (64, 64, 2)
    assert generation.model == "scripted-1"  # the provider's default, recorded
    assert generation.seed is not None  # drawn so the generation can be reproduced
    assert generation.max_attempts == settings.default_max_attempts
    [event] = events_after(db, generation_id=generation_id)
    assert (event.type, event.sequence, event.session_id) == ("queued", 1, ids[1])
    with db.reading() as session:
        chat = session.get(ChatSession, ids[1])
        assert (chat.last_provider, chat.last_model) == ("scripted", "scripted-1")
        assert session.get(Message, ids[2]).status == "queued"


def test_aspect_ratio_and_prompt_options_are_resolved_before_queueing(
    db: Database, registry, settings, user_id
) -> None:
    generation_id = submit(
        db,
        user_id,
        registry,
        settings,
        provider="builtin",
        width=None,
        height=None,
        aspect_ratio="16:9",
        prompt="a harbour",
        prompt_options={"style": "watercolor", "lighting": "golden hour"},
    )
    generation = load(db, generation_id)
    assert generation.width % 8 == 0 and generation.height % 8 == 0
    assert abs(generation.width / generation.height - 16 / 9) < 0.05
    assert generation.aspect_ratio == "16:9"
    assert generation.enhanced_prompt == "a harbour, watercolor style, golden hour lighting"
    assert generation.prompt_options == {"style": "watercolor", "lighting": "golden hour"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"provider": "nope"}, "provider"),
        ({"provider": "builtin", "width": 2056, "height": 64}, "width"),
        ({"provider": "builtin", "width": 64, "height": 4096}, "height"),
        ({"provider": "builtin", "width": 68, "height": 64}, "width"),
        ({"model": "no-such-model"}, "model"),
        ({"type": "img2img"}, "source_asset_id"),
        ({"type": "upscale"}, "source_asset_id"),
        ({"source_asset_id": uuid.UUID(int=7), "type": "img2img"}, "source_asset_id"),
        ({"parent_generation_id": uuid.UUID(int=9)}, "parent_generation_id"),
        ({"session_id": uuid.UUID(int=11)}, "session_id"),
    ],
)
def test_unservable_requests_are_refused_with_the_field_at_fault(
    db: Database, registry, settings, user_id, fields, field
) -> None:
    with pytest.raises(InvalidGenerationRequest) as caught:
        submit(db, user_id, registry, settings, **fields)
    assert caught.value.field == field
    assert caught.value.status_code == 422
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 0


def test_an_unconfigured_provider_is_refused(db: Database, registry, settings, user_id, scripted) -> None:
    scripted.problem = "set SCRIPTED_API_KEY"
    with pytest.raises(InvalidGenerationRequest) as caught:
        submit(db, user_id, registry, settings)
    assert (caught.value.field, caught.value.message) == ("provider", "set SCRIPTED_API_KEY")


def test_inputs_must_be_the_owners_images(db: Database, registry, settings) -> None:
    with db.writing() as session:
        owner = factories.make_user(session)
        stranger = factories.make_user(session)
        theirs = factories.make_upload(session, stranger).id
        mine = factories.make_upload(session, owner).id
        mask = factories.make_upload(session, owner, purpose="mask").id
        owner_id = owner.id
    with pytest.raises(InvalidGenerationRequest) as caught:
        submit(db, owner_id, registry, settings, type="img2img", source_asset_id=theirs)
    assert caught.value.field == "source_asset_id"
    with pytest.raises(InvalidGenerationRequest) as caught:
        submit(db, owner_id, registry, settings, type="inpaint", source_asset_id=mine)
    assert caught.value.field == "mask_asset_id"
    generation_id = submit(db, owner_id, registry, settings, type="inpaint", source_asset_id=mine, mask_asset_id=mask)
    with db.reading() as session:
        roles = session.execute(
            select(GenerationInput.role, GenerationInput.asset_id).where(GenerationInput.generation_id == generation_id)
        ).all()
    assert sorted(roles) == sorted([("init", mine), ("mask", mask)])


def test_idempotency_key_returns_the_first_generation_and_refuses_a_different_request(
    db: Database, registry, settings, user_id
) -> None:
    first = submit(db, user_id, registry, settings, prompt="a fox", idempotency_key="key-1")
    again = submit(db, user_id, registry, settings, prompt="a fox", idempotency_key="key-1")
    assert again == first
    with pytest.raises(IdempotencyConflict) as caught:
        submit(db, user_id, registry, settings, prompt="a wolf", idempotency_key="key-1")
    assert caught.value.existing_id == first
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 1
    assert len(events_after(db, generation_id=first)) == 1


def test_concurrent_requests_with_one_idempotency_key_create_one_generation(
    db: Database, registry, settings, user_id
) -> None:
    results: list[uuid.UUID] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        try:
            results.append(submit(db, user_id, registry, settings, prompt="same", idempotency_key="race"))
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(results)) == 1 and len(results) == 4
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 1


def test_cancel_of_a_queued_generation_is_immediate(db: Database, registry, settings) -> None:
    with db.writing() as session:
        owner = factories.make_user(session)
        chat = factories.make_session(session, owner)
        message = factories.make_message(session, chat, role="assistant", content="")
        ids = (owner.id, chat.id, message.id)
    generation_id = submit(db, ids[0], registry, settings, session_id=ids[1], message_id=ids[2])
    with db.writing() as session:
        canceled = request_cancel(session, generation_id=generation_id, owner_id=ids[0])
        assert canceled.status == "canceled"
    assert [event.type for event in events_after(db, generation_id=generation_id)] == ["queued", "canceled"]
    generation = load(db, generation_id)
    assert generation.completed_at is not None and not generation.cleanup_pending
    with db.reading() as session:
        assert session.get(Message, ids[2]).status == "canceled"
    # Nothing left to claim, and canceling again changes nothing.
    assert queue.claim(db, worker_id="w", limit=5, lease_seconds=30, default_max_running=2) == []
    with db.writing() as session:
        assert request_cancel(session, generation_id=generation_id, owner_id=ids[0]).status == "canceled"
    assert len(events_after(db, generation_id=generation_id)) == 2


def test_cancel_of_a_running_generation_asks_its_worker(db: Database, hub, registry, settings, user_id) -> None:
    generation_id = submit(db, user_id, registry, settings)
    claimed = _claim_one(db, settings)
    heard: list[uuid.UUID] = []
    hub.add_cancel_listener(heard.append)
    try:
        with db.writing() as session:
            generation = request_cancel(session, generation_id=generation_id, owner_id=user_id)
            assert (generation.status, generation.cancel_requested) == ("processing", True)
            assert heard == []  # only once committed
    finally:
        hub.remove_cancel_listener(heard.append)
    assert heard == [generation_id]
    assert queue.renew(db, [claimed.lease], 30) == {generation_id: True}
    types = [event.type for event in events_after(db, generation_id=generation_id)]
    assert types == ["queued", "started", "cancel_requested"]


def test_other_users_cannot_see_or_cancel_a_generation(db: Database, registry, settings, user_id) -> None:
    generation_id = submit(db, user_id, registry, settings)
    with db.writing() as session:
        stranger = factories.make_user(session).id
    with db.writing() as session, pytest.raises(GenerationNotFound):
        request_cancel(session, generation_id=generation_id, owner_id=stranger)
    assert load(db, generation_id).status == "queued"


def test_retry_makes_a_new_generation_with_the_same_request(db: Database, registry, settings) -> None:
    with db.writing() as session:
        owner = factories.make_user(session)
        chat = factories.make_session(session, owner)
        message = factories.make_message(session, chat, role="assistant", content="")
        upload = factories.make_upload(session, owner)
        ids = (owner.id, chat.id, message.id, upload.id)
    original = submit(
        db, ids[0], registry, settings, type="img2img", source_asset_id=ids[3], session_id=ids[1], message_id=ids[2]
    )
    with db.writing() as session, pytest.raises(InvalidGenerationState):
        retry_generation(session, generation_id=original, owner_id=ids[0], registry=registry, settings=settings)
    claimed = _claim_one(db, settings)
    assert fenced.finish_failed(db, claimed, "provider_failed", "it broke") == fenced.Outcome.done
    with db.writing() as session:
        retried = retry_generation(
            session, generation_id=original, owner_id=ids[0], registry=registry, settings=settings, idempotency_key="r1"
        ).id
    with db.writing() as session:
        again = retry_generation(
            session, generation_id=original, owner_id=ids[0], registry=registry, settings=settings, idempotency_key="r1"
        ).id
    assert again == retried
    old, new = load(db, original), load(db, retried)
    assert new.retried_from_id == original and new.status == "queued"
    assert (new.seed, new.prompt, new.type, new.session_id) == (old.seed, old.prompt, old.type, old.session_id)
    # The chat turn now follows the rerun.
    assert (old.message_id, new.message_id) == (None, ids[2])
    with db.reading() as session:
        assert session.get(Message, ids[2]).status == "queued"
        inputs = session.scalars(select(GenerationInput.asset_id).where(GenerationInput.generation_id == retried)).all()
    assert inputs == [ids[3]]


def test_delete_removes_unsuccessful_generations_and_their_objects(db: Database, registry, settings, storage, user_id):
    generation_id = submit(db, user_id, registry, settings, num_images=2)
    with db.writing() as session, pytest.raises(InvalidGenerationState):
        delete_generation(session, generation_id=generation_id, owner_id=user_id, storage=storage)
    # A crashed attempt left objects behind before the generation was canceled.
    for index in range(2):
        storage.put(output_key(generation_id, index), b"png", "image/png")
        storage.put(thumbnail_key(generation_id, index), b"webp", "image/webp")
    with db.writing() as session:
        request_cancel(session, generation_id=generation_id, owner_id=user_id)
    with db.writing() as session:
        delete_generation(session, generation_id=generation_id, owner_id=user_id, storage=storage)
    assert list(storage.list("")) == []
    with db.reading() as session:
        assert session.get(Generation, generation_id) is None
    assert events_after(db, generation_id=generation_id) == []


def test_registry_syncs_its_providers_to_the_table(db: Database, registry, scripted) -> None:
    scripted.problem = "no key"
    registry.sync_to_database(db)
    scripted.problem = None
    registry.sync_to_database(db)  # an upsert, not a second row
    with db.reading() as session:
        rows = {row.name: row for row in session.scalars(select(ProviderRecord))}
    assert set(rows) == {"builtin", "scripted"}
    assert rows["scripted"].configured and rows["scripted"].configuration_problem is None
    assert rows["builtin"].kind == "builtin" and rows["builtin"].models[0]["id"] == "builtin-procedural"
    assert "text2img" in rows["builtin"].capabilities["types"]
