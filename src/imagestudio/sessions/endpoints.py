"""/api/v1/sessions and the chat (/api/v1/sessions/{id}/messages). Thin: the work is in the services."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from imagestudio.accounts.deps import CurrentUser, DbSession, RequireVerifiedEmail
from imagestudio.container import ContainerDep
from imagestudio.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from imagestudio.sessions import chat, service
from imagestudio.sessions.detail import DEFAULT_STEPS, Steps, session_detail, session_steps
from imagestudio.sessions.schemas import (
    ChatTurnCreate,
    ChatTurnOut,
    MessageOut,
    SessionCreate,
    SessionDetail,
    SessionOut,
    SessionUpdate,
    StepPage,
    TurnMode,
)
from imagestudio.sessions.ui_turn import post_ui_turn, refuse_ui_fields

router = APIRouter(prefix="/sessions", tags=["sessions"])


@router.post("", status_code=201, response_model=SessionOut)
def create_session(body: SessionCreate, db: DbSession, user: CurrentUser) -> SessionOut:
    """Start a session. Without a title, the first prompt names it."""
    return service.session_out(service.create_session(db, user.id, body))


@router.get("", response_model=Page[SessionOut])
def list_sessions(
    db: DbSession,
    user: CurrentUser,
    project_id: uuid.UUID | None = None,
    archived: Annotated[bool, Query(description="true: only archived sessions; false: only the others.")] = False,
    q: Annotated[str | None, Query(max_length=200, description="Text in the title or any prompt.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[SessionOut]:
    """Your sessions, most recently active first."""
    filters = service.SessionFilters(project_id=project_id, archived=archived, q=q.strip() if q else None)
    rows, next_cursor = service.list_sessions(db, user.id, filters, limit, cursor)
    return Page(items=[service.session_out(row) for row in rows], next_cursor=next_cursor)


@router.get("/{session_id}", response_model=SessionDetail)
def get_session(session_id: uuid.UUID, db: DbSession, user: CurrentUser, steps: Steps = DEFAULT_STEPS) -> SessionDetail:
    """The session with its newest `steps` steps in full (messages, generations with inputs and outputs),
    the lineage tree of every step, and `steps_cursor` for the older ones (GET /sessions/{id}/steps)."""
    return session_detail(db, user.id, session_id, steps)


@router.get("/{session_id}/steps", response_model=StepPage)
def list_steps(
    session_id: uuid.UUID, db: DbSession, user: CurrentUser, limit: Limit = DEFAULT_STEPS, cursor: Cursor = None
) -> StepPage:
    """Older steps, newest first: their generations (`items`) and the messages of their turns. Start
    with the detail's `steps_cursor`; without a cursor, the newest steps."""
    return session_steps(db, user.id, session_id, limit, cursor)


@router.patch("/{session_id}", response_model=SessionOut)
def update_session(session_id: uuid.UUID, body: SessionUpdate, db: DbSession, user: CurrentUser) -> SessionOut:
    """Rename (`title`), move (`project_id`, null for none) or archive (`archived`)."""
    return service.session_out(service.update_session(db, user.id, session_id, body))


@router.delete("/{session_id}", status_code=204, response_class=Response)
def delete_session(session_id: uuid.UUID, db: DbSession, user: CurrentUser, container: ContainerDep) -> Response:
    """Delete the session, its messages, generations and images, for good."""
    service.delete_session(db, container.storage, user.id, session_id)
    return Response(status_code=204)


@router.post(
    "/{session_id}/messages", status_code=201, response_model=ChatTurnOut, dependencies=[RequireVerifiedEmail]
)
def post_message(
    session_id: uuid.UUID, body: ChatTurnCreate, db: DbSession, user: CurrentUser, container: ContainerDep
) -> ChatTurnOut:
    """Send a chat turn: it answers with your message, the assistant's and the generation it queued.
    Mode `ui` asks for user-interface code instead of an image (see /ui-generations)."""
    if body.mode == TurnMode.ui:
        return post_ui_turn(db, user=user, session_id=session_id, body=body, container=container)
    refuse_ui_fields(db, user, session_id, body)
    return chat.post_turn(
        db,
        user=user,
        session_id=session_id,
        body=body,
        registry=container.registry,
        settings=container.settings,
        language=container.language,
    )


@router.get("/{session_id}/messages", response_model=Page[MessageOut])
def list_messages(
    session_id: uuid.UUID, db: DbSession, user: CurrentUser, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[MessageOut]:
    """The session's messages, newest first."""
    items, next_cursor = chat.list_messages(db, user.id, session_id, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)
