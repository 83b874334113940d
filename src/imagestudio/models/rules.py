"""Session bookkeeping that the seeds put in database triggers, done here so it holds on every database.

They sit with the models, below the engine (generations) and the sessions domain, which both keep
these counters right, so neither imports the other for them. Each function runs inside the
caller's transaction and only flushes. Counters change through one UPDATE with arithmetic in SQL,
so concurrent writers never lose an increment.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ColumnElement, Uuid, case, func, literal, select, type_coerce, update
from sqlalchemy.orm import Session

from imagestudio.models import Asset, ChatSession, Generation, Message, MessageRole
from imagestudio.models.sessions import DEFAULT_SESSION_TITLE
from imagestudio.models.types import UTCDateTime, utcnow

TITLE_MAX_LENGTH = 80


def derive_title(prompt: str) -> str:
    """A session title from its first prompt: the first line, cut at a word boundary."""
    words = " ".join(prompt.split())
    if not words:
        return DEFAULT_SESSION_TITLE
    if len(words) <= TITLE_MAX_LENGTH:
        return words
    cut = words[: TITLE_MAX_LENGTH - 1].rsplit(" ", 1)[0]
    return cut.rstrip(",.;:-") + "…"


def step_time() -> ColumnElement[datetime]:
    """When a generation's step happened: the time of the turn that asked for it, else its creation."""
    turn_time = select(Message.created_at).where(Message.id == Generation.message_id).scalar_subquery()
    return type_coerce(func.coalesce(turn_time, Generation.created_at), UTCDateTime())


def step_order() -> tuple:
    """How a session's steps are numbered (1, 2, ...): by the time of the turn that asked for them, so a
    retry (which takes over its original's chat turn) keeps the original's place; then by creation."""
    return (step_time(), Generation.created_at, Generation.id)


def touch_session(db: Session, session_id: uuid.UUID, at: datetime | None = None) -> None:
    db.execute(update(ChatSession).where(ChatSession.id == session_id).values(updated_at=at or utcnow()))


def message_added(db: Session, message: Message) -> None:
    """A new message bumps the session's activity and count; a first user prompt names an untitled session."""
    values: dict = {
        "updated_at": message.created_at or utcnow(),
        "message_count": ChatSession.message_count + 1,
    }
    if message.role == MessageRole.user.value and message.content.strip():
        values["title"] = case(
            (ChatSession.title_is_custom.is_(False) & (ChatSession.message_count == 0), derive_title(message.content)),
            else_=ChatSession.title,
        )
    db.execute(update(ChatSession).where(ChatSession.id == message.session_id).values(**values))


def message_removed(db: Session, message: Message) -> None:
    db.execute(
        update(ChatSession)
        .where(ChatSession.id == message.session_id)
        .values(message_count=_greatest(db)(ChatSession.message_count - 1, 0), updated_at=utcnow())
    )


def generation_added(db: Session, generation: Generation) -> None:
    if generation.session_id is None:
        return
    db.execute(
        update(ChatSession)
        .where(ChatSession.id == generation.session_id)
        .values(
            updated_at=generation.created_at or utcnow(),
            last_provider=generation.provider,
            last_model=generation.model,
        )
    )


def output_added(db: Session, asset: Asset) -> None:
    """An output joins its session: the count goes up and, unless the owner picked a cover, the
    newest output becomes the thumbnail."""
    if asset.session_id is None:
        return
    db.execute(
        update(ChatSession)
        .where(ChatSession.id == asset.session_id)
        .values(
            image_count=ChatSession.image_count + 1,
            thumbnail_asset_id=case(
                (ChatSession.thumbnail_is_custom.is_(True), ChatSession.thumbnail_asset_id),
                else_=literal(asset.id, Uuid()),
            ),
            updated_at=utcnow(),
        )
    )


def output_removed(db: Session, asset: Asset) -> None:
    """Call before an output is deleted (or after it is soft-deleted): the count drops and a thumbnail
    that pointed at it moves to the session's newest remaining output (a picked cover that goes is
    no longer a pick)."""
    if asset.session_id is None or asset.kind != "output":
        return
    replacement = (
        select(Asset.id)
        .where(
            Asset.session_id == asset.session_id,
            Asset.kind == "output",
            Asset.id != asset.id,
            Asset.deleted_at.is_(None),
        )
        .order_by(Asset.created_at.desc(), Asset.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    was_cover = ChatSession.thumbnail_asset_id == asset.id
    db.execute(
        update(ChatSession)
        .where(ChatSession.id == asset.session_id)
        .values(
            image_count=_greatest(db)(ChatSession.image_count - 1, 0),
            thumbnail_asset_id=case((was_cover, replacement), else_=ChatSession.thumbnail_asset_id),
            thumbnail_is_custom=case((was_cover, False), else_=ChatSession.thumbnail_is_custom),
            updated_at=utcnow(),
        )
    )


def cover_picked(db: Session, session_id: uuid.UUID, asset_id: uuid.UUID | None) -> None:
    """The owner picks the session's cover (an output of it, checked by the caller); None returns
    to the default, the newest output."""
    if asset_id is not None:
        db.execute(
            update(ChatSession)
            .where(ChatSession.id == session_id)
            .values(thumbnail_asset_id=asset_id, thumbnail_is_custom=True)
        )
        return
    newest = (
        select(Asset.id)
        .where(Asset.session_id == session_id, Asset.kind == "output", Asset.deleted_at.is_(None))
        .order_by(Asset.created_at.desc(), Asset.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    db.execute(
        update(ChatSession)
        .where(ChatSession.id == session_id)
        .values(thumbnail_asset_id=newest, thumbnail_is_custom=False)
    )


def generation_status_changed(db: Session, generation_id: uuid.UUID, status: str) -> None:
    """An assistant message mirrors its generation's status, in the same transaction."""
    message_id = select(Generation.message_id).where(Generation.id == generation_id).scalar_subquery()
    db.execute(
        update(Message)
        .where(Message.id == message_id, Message.role == MessageRole.assistant.value)
        .values(status=status, updated_at=utcnow())
    )


def set_generation_status(db: Session, generation: Generation, status: str) -> None:
    generation.status = status
    db.flush()
    generation_status_changed(db, generation.id, status)


def _greatest(db: Session):
    """Two-argument max: max() on SQLite, greatest() on PostgreSQL."""
    return func.max if db.get_bind().dialect.name == "sqlite" else func.greatest
