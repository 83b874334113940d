"""UI generations: asking for one (from a chat turn), reading, listing, cancelling, retrying and
deleting them. Services only flush; the request commits.

A UI generation is a row in ui_generations and its job, a generation of type `ui` in the durable
queue, whose message is the assistant's answer in the chat (type `code`). Its status, error,
attempts, timings and events are the job's; its events go to the session's stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.assets.service import delete_objects_after_commit
from imagestudio.config import Settings
from imagestudio.generations import service as generations
from imagestudio.generations.enqueue import (
    LanguageJob,
    add_language_job,
    announce_queued,
    language_model,
    language_provider,
)
from imagestudio.kit.errors import Conflict, Invalid, NotFound
from imagestudio.kit.pagination import keyset_page
from imagestudio.language import LanguageRegistry
from imagestudio.language.registry import BUILTIN
from imagestudio.models import (
    FINAL_STATUSES,
    Asset,
    ChatSession,
    Generation,
    GenerationType,
    InputPurpose,
    Message,
    RunStatus,
    UiGeneration,
    rules,
)
from imagestudio.storage.base import ObjectNotFound, Storage
from imagestudio.uicode.composer import COMPOSER_MODEL

# The viewport a document is designed for, recorded as the job's size (the page shows three widths).
DESIGN_WIDTH, DESIGN_HEIGHT = 1280, 800


@dataclass(frozen=True)
class UiView:
    row: UiGeneration
    job: Generation


@dataclass(frozen=True)
class UiRequest:
    """What a chat turn in mode "ui" asks for; the chat has checked the assets and the parent are the owner's."""

    owner_id: uuid.UUID
    session_id: uuid.UUID
    prompt: str
    user_message_id: uuid.UUID | None
    assistant_message_id: uuid.UUID | None
    parent: UiGeneration | None
    source: Asset | None
    provider: str | None
    model: str | None


def choose_model(
    language: LanguageRegistry, provider: str | None, model: str | None, *, vision: bool
) -> tuple[str, str]:
    """The language provider and model that will write the code; 422 naming the field otherwise."""
    name = language_provider(language, provider)
    if name == BUILTIN:
        if model not in (None, COMPOSER_MODEL):
            raise Invalid("model", f"the built-in composer has one model: {COMPOSER_MODEL}")
        return name, COMPOSER_MODEL
    return name, language_model(language, name, model, vision=vision)


def request_ui(db: Session, request: UiRequest, *, language: LanguageRegistry, settings: Settings) -> UiView:
    """Queue a UI generation. Answers at once; the job runs in the generations queue."""
    provider, model = choose_model(language, request.provider, request.model, vision=request.source is not None)
    job = add_language_job(
        db,
        LanguageJob(
            owner_id=request.owner_id,
            session_id=request.session_id,
            message_id=request.assistant_message_id,
            parent_generation_id=request.parent.generation_id if request.parent is not None else None,
            type=GenerationType.ui.value,
            provider=provider,
            model=model,
            prompt=request.prompt,
            width=DESIGN_WIDTH,
            height=DESIGN_HEIGHT,
        ),
        settings=settings,
        source=request.source,
        role=InputPurpose.reference.value,
    )
    now = job.created_at
    row = UiGeneration(
        owner_id=request.owner_id,
        session_id=request.session_id,
        generation_id=job.id,
        message_id=request.user_message_id,
        parent_id=request.parent.id if request.parent is not None else None,
        source_asset_id=request.source.id if request.source is not None else None,
        prompt=request.prompt,
        created_at=now,
        updated_at=now,
    )
    db.add(row)
    db.flush()
    announce_queued(db, job, ui_generation_id=str(row.id))
    return UiView(row, job)


def get_ui(db: Session, owner_id: uuid.UUID, ui_id: uuid.UUID) -> UiView:
    found = db.execute(
        select(UiGeneration, Generation)
        .join(Generation, Generation.id == UiGeneration.generation_id)
        .where(UiGeneration.id == ui_id, UiGeneration.owner_id == owner_id)
        .execution_options(populate_existing=True)
    ).first()
    if found is None:
        raise NotFound("UI generation")
    return UiView(found[0], found[1])


def owned_ui(db: Session, owner_id: uuid.UUID, session_id: uuid.UUID, ui_id: uuid.UUID, field: str) -> UiGeneration:
    """A UI generation of this session to iterate on; 422 naming the field otherwise."""
    row = db.get(UiGeneration, ui_id)
    if row is None or row.owner_id != owner_id or row.session_id != session_id:
        raise Invalid(field, f"No UI generation {ui_id} in this session.")
    return row


def latest_ui(db: Session, session_id: uuid.UUID) -> UiGeneration | None:
    return db.scalars(
        select(UiGeneration)
        .where(UiGeneration.session_id == session_id)
        .order_by(UiGeneration.created_at.desc(), UiGeneration.id.desc())
        .limit(1)
    ).first()


def list_session_ui(
    db: Session, owner_id: uuid.UUID, session_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[UiView], str | None]:
    """A session's UI generations, newest first; 404 for a session that is not the owner's."""
    session = db.get(ChatSession, session_id)
    if session is None or session.owner_id != owner_id:
        raise NotFound("session")
    statement = select(UiGeneration).where(UiGeneration.session_id == session_id)
    rows, next_cursor = keyset_page(db, statement, UiGeneration.created_at, UiGeneration.id, limit, cursor)
    return _with_jobs(db, rows), next_cursor


def project_ui_generations(db: Session, project_id: uuid.UUID, *, succeeded_only: bool = True) -> list[UiView]:
    """The UI generations of a project's sessions, oldest first (for the project's pages; the caller
    has decided who may see the project)."""
    statement = (
        select(UiGeneration, Generation)
        .join(Generation, Generation.id == UiGeneration.generation_id)
        .join(ChatSession, ChatSession.id == UiGeneration.session_id)
        .where(ChatSession.project_id == project_id)
        .order_by(UiGeneration.created_at, UiGeneration.id)
    )
    if succeeded_only:
        statement = statement.where(Generation.status == RunStatus.succeeded.value)
    return [UiView(row, job) for row, job in db.execute(statement)]


def _with_jobs(db: Session, rows: Sequence[UiGeneration]) -> list[UiView]:
    ids = [row.generation_id for row in rows]
    jobs = {job.id: job for job in db.scalars(select(Generation).where(Generation.id.in_(ids)))} if ids else {}
    return [UiView(row, jobs[row.generation_id]) for row in rows]


def read_code(storage: Storage, row: UiGeneration) -> str | None:
    if row.storage_key is None:
        return None
    try:
        return storage.get(row.storage_key).decode()
    except ObjectNotFound:
        return None


def cancel_ui(db: Session, owner_id: uuid.UUID, ui_id: uuid.UUID) -> UiView:
    view = get_ui(db, owner_id, ui_id)
    generations.request_cancel(db, generation_id=view.job.id, owner_id=owner_id)
    return get_ui(db, owner_id, ui_id)


def retry_ui(
    db: Session, owner_id: uuid.UUID, ui_id: uuid.UUID, *, language: LanguageRegistry, settings: Settings
) -> UiView:
    """A failed or canceled UI generation asked again as a new one (the job's retried_from_id points back)."""
    view = get_ui(db, owner_id, ui_id)
    if view.job.status not in (RunStatus.failed, RunStatus.canceled):
        raise Conflict("invalid_generation_state", f"A {view.job.status} UI generation cannot be retried.")
    row = view.row
    parent = db.get(UiGeneration, row.parent_id) if row.parent_id is not None else None
    source = db.get(Asset, row.source_asset_id) if row.source_asset_id is not None else None
    request = UiRequest(
        owner_id=owner_id,
        session_id=row.session_id,
        prompt=row.prompt,
        user_message_id=row.message_id,
        assistant_message_id=None,
        parent=parent,
        source=source if source is not None and source.deleted_at is None else None,
        provider=view.job.provider,
        model=view.job.model if view.job.provider != BUILTIN else None,
    )
    retried = request_ui(db, request, language=language, settings=settings)
    retried.job.retried_from_id = view.job.id
    # The chat's answer follows the new attempt.
    if view.job.message_id is not None:
        message_id = view.job.message_id
        view.job.message_id = None
        db.flush()
        retried.job.message_id = message_id
        rules.generation_status_changed(db, retried.job.id, RunStatus.queued.value)
    db.flush()
    return retried


def delete_ui(db: Session, storage: Storage, owner_id: uuid.UUID, ui_id: uuid.UUID) -> None:
    """Delete a finished UI generation, its job, the assistant's message and the stored code; 409 while it
    is queued or running."""
    view = get_ui(db, owner_id, ui_id)
    if view.job.status not in FINAL_STATUSES:
        raise Conflict("invalid_generation_state", "Cancel the UI generation before deleting it.")
    keys = list(storage.list(f"code/{view.job.id}/"))
    answer = db.get(Message, view.job.message_id) if view.job.message_id is not None else None
    db.delete(view.row)
    db.flush()
    db.delete(view.job)
    db.flush()
    # The chat's answer goes with it; the question stays, as it was asked.
    if answer is not None:
        rules.message_removed(db, answer)
        db.delete(answer)
        db.flush()
    delete_objects_after_commit(db, storage, keys)
