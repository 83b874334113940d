"""Every constraint of the schema rejects what it should, on SQLite and on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from imagestudio.db import Database
from imagestudio.models import (
    ApiKey,
    Asset,
    Generation,
    GenerationEvent,
    GenerationInput,
    Message,
    Project,
    User,
    UserSettings,
)
from tests.factories import make_generation, make_output, make_session, make_upload, make_user


def _rejects(db: Database, build) -> None:
    """The write fails with a database error and leaves nothing behind."""
    with pytest.raises(IntegrityError), db.writing() as session:
        build(session)


@pytest.fixture
def owner(db: Database) -> User:
    with db.writing() as session:
        return make_user(session)


@pytest.mark.parametrize(
    "values",
    [
        {"type": "txt2vid"},
        {"status": "done"},
        {"num_images": 0},
        {"num_images": 11},
        {"strength": 1.5},
        {"strength": -0.1},
        {"width": 0},
        {"height": -8},
        {"steps": 0},
        {"guidance": -1.0},
        {"seed": -5},
        {"attempt": 4, "max_attempts": 3},
        {"max_attempts": 0},
        {"upscale_factor": 1},
        {"running_slot": -1},
    ],
    ids=lambda v: ",".join(f"{k}={v[k]}" for k in v),
)
def test_generation_checks_reject_bad_values(db: Database, owner: User, values: dict) -> None:
    _rejects(db, lambda s: make_generation(s, owner, **values))
    with db.reading() as session:
        assert session.scalar(select(Generation.id)) is None


def test_generation_accepts_the_edges_of_its_ranges(db: Database, owner: User) -> None:
    with db.writing() as session:
        make_generation(session, owner, num_images=1, strength=0.0)
        make_generation(session, owner, num_images=10, strength=1.0, attempt=3, max_attempts=3)
    with db.reading() as session:
        assert len(session.scalars(select(Generation.id)).all()) == 2


def test_enums_of_other_tables(db: Database, owner: User) -> None:
    with db.writing() as session:
        chat = make_session(session, owner)
        generation = make_generation(session, owner, chat)
        upload = make_upload(session, owner)
    _rejects(db, lambda s: s.add(Message(session_id=chat.id, role="bot", content="hi")) or s.flush())
    _rejects(db, lambda s: s.add(Message(session_id=chat.id, role="assistant", status="done")) or s.flush())
    _rejects(db, lambda s: s.add(Project(owner_id=owner.id, name="p", status="paused")) or s.flush())
    _rejects(db, lambda s: s.add(UserSettings(user_id=owner.id, theme="neon")) or s.flush())
    _rejects(
        db,
        lambda s: s.add(GenerationInput(generation_id=generation.id, asset_id=upload.id, role="style")) or s.flush(),
    )
    _rejects(
        db,
        lambda s: (
            s.add(
                GenerationEvent(generation_id=generation.id, owner_id=owner.id, sequence=1, position=1, type="exploded")
            )
            or s.flush()
        ),
    )
    _rejects(db, lambda s: make_upload(s, owner, purpose="wallpaper"))


def test_asset_checks(db: Database, owner: User) -> None:
    with db.writing() as session:
        generation = make_generation(session, owner)
    _rejects(db, lambda s: make_upload(s, owner, width=0))
    _rejects(db, lambda s: make_upload(s, owner, bytes=-1))
    _rejects(db, lambda s: make_upload(s, owner, kind="thumbnail"))
    # An output must say which generation and batch slot it fills.
    _rejects(db, lambda s: make_upload(s, owner, kind="output", purpose=None))
    _rejects(db, lambda s: make_output(s, generation, batch_index=-1))


def test_unique_constraints(db: Database, owner: User) -> None:
    other_email = owner.email
    _rejects(db, lambda s: make_user(s, email=other_email))
    # Emails are stored lower-case so uniqueness is case-insensitive.
    _rejects(db, lambda s: make_user(s, email="Someone@Example.test"))

    with db.writing() as session:
        session.add(ApiKey(user_id=owner.id, name="one", prefix="isk_abc", key_hash="h1"))
    _rejects(db, lambda s: s.add(ApiKey(user_id=owner.id, name="two", prefix="isk_abc", key_hash="h2")) or s.flush())

    with db.writing() as session:
        make_generation(session, owner, idempotency_key="k-1")
        other = make_user(session)
        # The same key from another user is a different request.
        make_generation(session, other, idempotency_key="k-1")
    _rejects(db, lambda s: make_generation(s, owner, idempotency_key="k-1"))

    with db.writing() as session:
        generation = make_generation(session, owner)
        make_output(session, generation, batch_index=0)
    _rejects(
        db,
        lambda s: (
            s.add(
                Asset(
                    owner_id=owner.id,
                    generation_id=generation.id,
                    batch_index=0,
                    kind="output",
                    storage_key="outputs/duplicate.png",
                    mime_type="image/png",
                    bytes=1,
                    width=1,
                    height=1,
                    sha256="0" * 64,
                )
            )
            or s.flush()
        ),
    )


def test_running_slots_are_unique_per_user(db: Database, owner: User) -> None:
    with db.writing() as session:
        make_generation(session, owner, status="processing", running_slot=0)
        make_generation(session, owner, status="processing", running_slot=1)
        # Finished generations hold no slot, any number of them.
        make_generation(session, owner, status="succeeded", running_slot=None)
        make_generation(session, owner, status="succeeded", running_slot=None)
    _rejects(db, lambda s: make_generation(s, owner, status="processing", running_slot=0))


def test_one_generation_per_message(db: Database, owner: User) -> None:
    with db.writing() as session:
        chat = make_session(session, owner)
        message = Message(session_id=chat.id, role="assistant", content="")
        session.add(message)
        session.flush()
        make_generation(session, owner, chat, message_id=message.id)
    _rejects(db, lambda s: make_generation(s, owner, chat, message_id=message.id))


def test_orphan_foreign_keys_are_rejected(db: Database, owner: User) -> None:
    ghost = uuid.uuid4()
    _rejects(
        db,
        lambda s: s.execute(
            insert(Generation).values(
                id=uuid.uuid4(),
                owner_id=ghost,
                type="text2img",
                status="queued",
                provider="builtin",
                model="m",
                prompt="p",
                width=8,
                height=8,
                num_images=1,
                prompt_options={},
                params={},
                usage={},
            )
        ),
    )
    _rejects(db, lambda s: s.add(Message(session_id=ghost, role="user", content="hi")) or s.flush())
    _rejects(db, lambda s: make_generation(s, owner, parent_generation_id=ghost))
    with db.writing() as session:
        chat = make_session(session, owner)
    _rejects(
        db,
        lambda s: s.execute(
            text("UPDATE sessions SET thumbnail_asset_id = :a WHERE id = :s"),
            {
                "a": ghost.hex if db.dialect == "sqlite" else ghost,
                "s": (chat.id.hex if db.dialect == "sqlite" else chat.id),
            },
        ),
    )


def test_a_project_is_public_exactly_when_it_has_a_link(db: Database, owner: User) -> None:
    _rejects(db, lambda s: s.add(Project(owner_id=owner.id, name="p", is_public=True)) or s.flush())
    _rejects(db, lambda s: s.add(Project(owner_id=owner.id, name="p", public_token_hash="a" * 64)) or s.flush())
    with db.writing() as session:
        session.add(Project(owner_id=owner.id, name="shared", is_public=True, public_token_hash="b" * 64))
        session.commit()
    # Two projects never share a link.
    taken = {"owner_id": owner.id, "name": "q", "is_public": True, "public_token_hash": "b" * 64}
    _rejects(db, lambda s: s.add(Project(**taken)) or s.flush())
