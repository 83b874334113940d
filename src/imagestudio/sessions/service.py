"""Sessions: create, list, rename, archive, delete. Functions flush only; the request commits."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from imagestudio import notify
from imagestudio.assets.service import delete_objects_after_commit, thumbnail_url
from imagestudio.kit.errors import ApiError, FieldError, not_found
from imagestudio.kit.pagination import keyset_page
from imagestudio.kit.text import like_pattern
from imagestudio.models import (
    Asset,
    ChatSession,
    Generation,
    GenerationInput,
    Message,
    MessageAttachment,
    MessageRole,
    RunStatus,
    rules,
)
from imagestudio.models.types import utcnow
from imagestudio.sessions.projects import get_owned_project
from imagestudio.sessions.schemas import SessionCreate, SessionOut, SessionUpdate
from imagestudio.storage.base import Storage
from imagestudio.storage.keys import stored_objects


def session_out(session: ChatSession) -> SessionOut:
    thumbnail = session.thumbnail_asset_id
    return SessionOut(
        id=session.id,
        title=session.title,
        project_id=session.project_id,
        thumbnail_asset_id=thumbnail,
        thumbnail_is_custom=session.thumbnail_is_custom,
        thumbnail_url=thumbnail_url(thumbnail) if thumbnail else None,
        image_count=session.image_count,
        message_count=session.message_count,
        last_provider=session.last_provider,
        last_model=session.last_model,
        archived=session.archived_at is not None,
        context=session.context,
        expires_at=session.expires_at,
        created_at=session.created_at,
        updated_at=session.updated_at,
    )


def get_owned_session(db: Session, owner_id: uuid.UUID, session_id: uuid.UUID) -> ChatSession:
    """The session if owner_id owns it; 404 alike for missing and foreign sessions."""
    session = db.scalar(select(ChatSession).where(ChatSession.id == session_id, ChatSession.owner_id == owner_id))
    if session is None:
        raise not_found("session")
    return session


def _check_project(db: Session, owner_id: uuid.UUID, project_id: uuid.UUID) -> None:
    try:
        get_owned_project(db, owner_id, project_id)
    except ApiError:
        raise ApiError(
            422, "validation_failed", "The request has invalid fields.", [FieldError("project_id", "No such project.")]
        ) from None


def _storable(value: datetime | None) -> datetime | None:
    """An expiry in UTC, refused (422) when no database can store it."""
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ApiError(
            422,
            "validation_failed",
            "The request has invalid fields.",
            [FieldError("expires_at", "Out of the range of dates this studio stores.")],
        ) from None


def create_session(db: Session, owner_id: uuid.UUID, body: SessionCreate) -> ChatSession:
    if body.project_id is not None:
        _check_project(db, owner_id, body.project_id)
    now = utcnow()
    session = ChatSession(
        owner_id=owner_id,
        project_id=body.project_id,
        expires_at=_storable(body.expires_at),
        context=body.context,
        created_at=now,
        updated_at=now,
    )
    if body.title is not None:
        session.title = body.title
        session.title_is_custom = True
    db.add(session)
    db.flush()
    return session


@dataclass(frozen=True)
class SessionFilters:
    project_id: uuid.UUID | None = None
    archived: bool = False
    q: str | None = None


def list_sessions(
    db: Session, owner_id: uuid.UUID, filters: SessionFilters, limit: int, cursor: str | None
) -> tuple[Sequence[ChatSession], str | None]:
    """The user's sessions by last activity, newest first. `q` matches titles and prompts, in any case."""
    statement = select(ChatSession).where(ChatSession.owner_id == owner_id)
    if filters.project_id is not None:
        statement = statement.where(ChatSession.project_id == filters.project_id)
    archived = ChatSession.archived_at.is_not(None)
    statement = statement.where(archived if filters.archived else ~archived)
    if filters.q:
        pattern = like_pattern(filters.q)
        prompts = exists().where(Generation.session_id == ChatSession.id, Generation.prompt.ilike(pattern, escape="\\"))
        turns = exists().where(
            Message.session_id == ChatSession.id,
            Message.role == MessageRole.user.value,
            Message.content.ilike(pattern, escape="\\"),
        )
        statement = statement.where(or_(ChatSession.title.ilike(pattern, escape="\\"), prompts, turns))
    return keyset_page(db, statement, ChatSession.updated_at, ChatSession.id, limit, cursor)


def update_session(db: Session, owner_id: uuid.UUID, session_id: uuid.UUID, body: SessionUpdate) -> ChatSession:
    """Rename, move to a project (null: out of any), set the context or expiry, archive or unarchive.
    Not activity: updated_at stays."""
    session = get_owned_session(db, owner_id, session_id)
    given = body.model_fields_set
    if "title" in given:
        if body.title is None:
            raise ApiError(
                422, "validation_failed", "The request has invalid fields.", [FieldError("title", "May not be null.")]
            )
        session.title = body.title
        session.title_is_custom = True
    if "project_id" in given:
        if body.project_id is not None:
            _check_project(db, owner_id, body.project_id)
        session.project_id = body.project_id
    if "context" in given and body.context is not None:
        session.context = body.context
    if "expires_at" in given:
        session.expires_at = _storable(body.expires_at)
    if "archived" in given and body.archived is not None:
        if body.archived and session.archived_at is None:
            session.archived_at = utcnow()
        elif not body.archived:
            session.archived_at = None
    db.flush()
    if "thumbnail_asset_id" in given:
        _pick_cover(db, session, body.thumbnail_asset_id)
    return session


def _pick_cover(db: Session, session: ChatSession, asset_id: uuid.UUID | None) -> None:
    if asset_id is not None:
        is_image_here = exists().where(
            Asset.id == asset_id,
            Asset.session_id == session.id,
            Asset.kind == "output",
            Asset.deleted_at.is_(None),
        )
        if not db.scalar(select(is_image_here)):
            problem = [FieldError("thumbnail_asset_id", "Not an image of this session.")]
            raise ApiError(422, "validation_failed", "The request has invalid fields.", problem)
    rules.cover_picked(db, session.id, asset_id)
    db.refresh(session)


def _hand_over_shared_uploads(db: Session, session_id: uuid.UUID) -> None:
    """Uploads of this session that something outside it still uses (another session's generation
    input or message attachment, or a generation without a session) are kept: each moves to one of
    the sessions that uses it (none, if only session-less generations do), so it is removed only
    when nothing references it any more."""
    uploads = select(Asset.id).where(Asset.session_id == session_id, Asset.kind == "upload")
    users = (
        select(GenerationInput.asset_id.label("asset_id"), Generation.session_id.label("user_session_id"))
        .join(Generation, Generation.id == GenerationInput.generation_id)
        .where(
            GenerationInput.asset_id.in_(uploads),
            or_(Generation.session_id.is_(None), Generation.session_id != session_id),
        )
        .union_all(
            select(MessageAttachment.asset_id, Message.session_id)
            .join(Message, Message.id == MessageAttachment.message_id)
            .where(MessageAttachment.asset_id.in_(uploads), Message.session_id != session_id)
        )
        .subquery()
    )
    heirs: dict[uuid.UUID, uuid.UUID | None] = {}
    for asset_id, user_session_id in db.execute(select(users.c.asset_id, users.c.user_session_id)):
        current = heirs.get(asset_id)
        # The earliest session that uses it inherits it (session ids are time-ordered).
        heirs[asset_id] = user_session_id if current is None else min(filter(None, (current, user_session_id)))
    for asset_id, heir in heirs.items():
        db.execute(update(Asset).where(Asset.id == asset_id).values(session_id=heir))


def delete_session(db: Session, storage: Storage, owner_id: uuid.UUID, session_id: uuid.UUID) -> None:
    """Delete a session with its messages, generations and assets; their stored files go once the
    deletion commits. Running generations are told to stop (their workers discard what they made)."""
    session = get_owned_session(db, owner_id, session_id)
    _hand_over_shared_uploads(db, session.id)
    keys: set[str] = set()
    for storage_key, thumbnail_key in db.execute(
        select(Asset.storage_key, Asset.thumbnail_key).where(Asset.session_id == session.id)
    ):
        keys.add(storage_key)
        if thumbnail_key:
            keys.add(thumbnail_key)
    # UI code, every attempt's (a failed attempt's document is named by no row).
    ui_jobs = select(Generation.id).where(Generation.session_id == session.id, Generation.type == "ui")
    for generation_id in db.scalars(ui_jobs):
        keys.update(storage.list(f"code/{generation_id}/"))
    # Attempts that crashed or lost their lease may have left files that no asset row names.
    flagged = db.scalars(
        select(Generation.id).where(Generation.session_id == session.id, Generation.cleanup_pending.is_(True))
    ).all()
    keys.update(stored_objects(storage, flagged))
    running = db.scalars(
        select(Generation.id).where(
            Generation.session_id == session.id, Generation.status == RunStatus.processing.value
        )
    ).all()
    for generation_id in running:
        notify.announce_cancel(db, generation_id)
    # Generations (with their outputs and events) before the session: the order a finishing worker
    # locks them in, so the two never wait on each other.
    db.execute(delete(Generation).where(Generation.session_id == session.id))
    db.execute(delete(ChatSession).where(ChatSession.id == session.id))
    db.expunge(session)
    delete_objects_after_commit(db, storage, keys)
