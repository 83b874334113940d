"""The bookkeeping rules that the seeds put in triggers hold on both databases, including under deletion."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from sqlalchemy import delete, func, select

from imagestudio.db import Database
from imagestudio.models import (
    Asset,
    ChatSession,
    Generation,
    GenerationEvent,
    GenerationInput,
    Message,
    MessageAttachment,
    User,
    rules,
)
from imagestudio.models.types import utcnow
from tests.factories import make_generation, make_message, make_output, make_session, make_upload, make_user


def _session(db: Database, session_id) -> ChatSession:
    with db.reading() as s:
        return s.get(ChatSession, session_id)


def test_first_user_prompt_titles_the_session_and_messages_bump_activity(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner, updated_at=utcnow() - timedelta(days=1))
    before = _session(db, chat.id).updated_at
    with db.writing() as s:
        make_message(s, chat, content="  A lighthouse   at dusk, oil painting  ")
    after = _session(db, chat.id)
    assert after.title == "A lighthouse at dusk, oil painting"
    assert after.message_count == 1
    assert after.updated_at > before

    with db.writing() as s:
        make_message(s, chat, content="now make it stormy")
    assert _session(db, chat.id).title == "A lighthouse at dusk, oil painting"
    assert _session(db, chat.id).message_count == 2


def test_long_prompts_make_short_titles_and_custom_titles_stay(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner)
        named = make_session(s, owner, title="My series", title_is_custom=True)
        make_message(s, chat, content="word " * 60)
        make_message(s, named, content="a castle")
    title = _session(db, chat.id).title
    assert len(title) <= rules.TITLE_MAX_LENGTH and title.endswith("…")
    assert _session(db, named.id).title == "My series"


def test_generation_bumps_session_and_records_last_model(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner, updated_at=utcnow() - timedelta(hours=1))
    before = _session(db, chat.id).updated_at
    with db.writing() as s:
        make_generation(s, owner, chat, provider="builtin", model="builtin-procedural")
    after = _session(db, chat.id)
    assert after.updated_at > before
    assert (after.last_provider, after.last_model) == ("builtin", "builtin-procedural")


def test_newest_output_is_the_thumbnail_and_count_follows_outputs(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner)
        generation = make_generation(s, owner, chat, num_images=3)
        first = make_output(s, generation, 0)
        second = make_output(s, generation, 1)
        third = make_output(s, generation, 2)
    state = _session(db, chat.id)
    assert state.image_count == 3
    assert state.thumbnail_asset_id == third.id

    # Deleting an older output keeps the thumbnail; deleting the thumbnail moves it to the newest left.
    with db.writing() as s:
        rules.output_removed(s, s.get(Asset, second.id))
        s.execute(delete(Asset).where(Asset.id == second.id))
    assert _session(db, chat.id).image_count == 2
    assert _session(db, chat.id).thumbnail_asset_id == third.id
    with db.writing() as s:
        rules.output_removed(s, s.get(Asset, third.id))
        s.execute(delete(Asset).where(Asset.id == third.id))
    state = _session(db, chat.id)
    assert state.image_count == 1
    assert state.thumbnail_asset_id == first.id
    with db.writing() as s:
        rules.output_removed(s, s.get(Asset, first.id))
        s.execute(delete(Asset).where(Asset.id == first.id))
    state = _session(db, chat.id)
    assert (state.image_count, state.thumbnail_asset_id) == (0, None)


def test_a_picked_cover_stays_until_it_is_removed_or_unpicked(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner)
        generation = make_generation(s, owner, chat, num_images=3)
        first = make_output(s, generation, 0)
        second = make_output(s, generation, 1)
    with db.writing() as s:
        rules.cover_picked(s, chat.id, first.id)
    with db.writing() as s:
        third = make_output(s, generation, 2)
    state = _session(db, chat.id)
    assert (state.thumbnail_asset_id, state.thumbnail_is_custom) == (first.id, True)
    # Unpicking returns to the newest output.
    with db.writing() as s:
        rules.cover_picked(s, chat.id, None)
    state = _session(db, chat.id)
    assert (state.thumbnail_asset_id, state.thumbnail_is_custom) == (third.id, False)
    # A picked cover that is deleted hands over to the newest left, and new outputs follow again.
    with db.writing() as s:
        rules.cover_picked(s, chat.id, second.id)
    with db.writing() as s:
        asset = s.get(Asset, second.id)
        asset.deleted_at = utcnow()
        s.flush()
        rules.output_removed(s, asset)
    state = _session(db, chat.id)
    assert (state.image_count, state.thumbnail_asset_id, state.thumbnail_is_custom) == (2, third.id, False)


def test_soft_deleted_output_gives_up_the_thumbnail(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner)
        generation = make_generation(s, owner, chat, num_images=2)
        first = make_output(s, generation, 0)
        second = make_output(s, generation, 1)
    with db.writing() as s:
        asset = s.get(Asset, first.id)
        asset.deleted_at = utcnow()
        s.flush()
        rules.output_removed(s, asset)
    state = _session(db, chat.id)
    assert (state.image_count, state.thumbnail_asset_id) == (1, second.id)
    with db.writing() as s:
        asset = s.get(Asset, second.id)
        asset.deleted_at = utcnow()
        s.flush()
        rules.output_removed(s, asset)
    state = _session(db, chat.id)
    assert (state.image_count, state.thumbnail_asset_id) == (0, None)


def test_assistant_message_mirrors_generation_status(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner)
        user_turn = make_message(s, chat, content="a fox")
        reply = make_message(s, chat, role="assistant", content="", status="processing", parent_message_id=user_turn.id)
        generation = make_generation(s, owner, chat, message_id=reply.id)
    for status in ("processing", "failed", "succeeded"):
        with db.writing() as s:
            rules.set_generation_status(s, s.get(Generation, generation.id), status)
        with db.reading() as s:
            assert s.get(Message, reply.id).status == status
            assert s.get(Message, user_turn.id).status is None


def test_concurrent_outputs_never_lose_a_count(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner)
        generations = [make_generation(s, owner, chat, num_images=1) for _ in range(12)]
    errors: list[BaseException] = []

    def add(generation: Generation) -> None:
        try:
            with db.writing() as s:
                make_output(s, s.get(Generation, generation.id), 0)
                time.sleep(0.001)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=add, args=(g,)) for g in generations]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    state = _session(db, chat.id)
    assert state.image_count == 12
    with db.reading() as s:
        earliest = s.scalar(select(Asset.id).where(Asset.session_id == chat.id).order_by(Asset.created_at))
    assert state.thumbnail_asset_id is not None and earliest is not None


def test_deleting_a_session_removes_everything_in_it(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner)
        keep = make_session(s, owner)
        message = make_message(s, chat, content="a fox")
        upload = make_upload(s, owner, session_id=chat.id)
        s.add(MessageAttachment(message_id=message.id, asset_id=upload.id))
        generation = make_generation(s, owner, chat, message_id=message.id)
        s.add(GenerationInput(generation_id=generation.id, asset_id=upload.id, role="init"))
        s.add(
            GenerationEvent(
                generation_id=generation.id,
                owner_id=owner.id,
                session_id=chat.id,
                sequence=1,
                position=1,
                type="queued",
            )
        )
        make_output(s, generation, 0)
        other_generation = make_generation(s, owner, keep)
        make_output(s, other_generation, 0)
    with db.writing() as s:
        s.execute(delete(ChatSession).where(ChatSession.id == chat.id))
    with db.reading() as s:
        for model in (Message, Generation, GenerationEvent, GenerationInput, MessageAttachment):
            column = model.session_id if hasattr(model, "session_id") else None
            rows = (
                s.scalar(select(func.count()).select_from(model).where(column == chat.id))
                if column is not None
                else s.scalar(select(func.count()).select_from(model))
            )
            assert rows == 0, model.__name__
        assert s.scalar(select(func.count()).select_from(Asset).where(Asset.session_id == chat.id)) == 0
        # The other session is untouched.
        assert s.scalar(select(func.count()).select_from(Generation).where(Generation.session_id == keep.id)) == 1
        assert s.get(ChatSession, keep.id).image_count == 1


def test_deleting_a_parent_generation_keeps_its_children(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        chat = make_session(s, owner)
        parent = make_generation(s, owner, chat)
        child = make_generation(s, owner, chat, parent_generation_id=parent.id, type="img2img")
        retry = make_generation(s, owner, chat, retried_from_id=parent.id)
    with db.writing() as s:
        s.execute(delete(Generation).where(Generation.id == parent.id))
    with db.reading() as s:
        assert s.get(Generation, child.id).parent_generation_id is None
        assert s.get(Generation, retry.id).retried_from_id is None


def test_deleting_a_user_removes_their_data(db: Database) -> None:
    with db.writing() as s:
        owner = make_user(s)
        survivor = make_user(s)
        chat = make_session(s, owner)
        make_output(s, make_generation(s, owner, chat), 0)
        make_session(s, survivor)
    with db.writing() as s:
        s.execute(delete(User).where(User.id == owner.id))
    with db.reading() as s:
        assert s.scalar(select(func.count()).select_from(ChatSession)) == 1
        assert s.scalar(select(func.count()).select_from(Generation)) == 0
        assert s.scalar(select(func.count()).select_from(Asset)) == 0
