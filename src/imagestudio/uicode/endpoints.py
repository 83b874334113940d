"""/api/v1/ui-generations: UI code written for chat turns in mode "ui", and its sandboxed preview.
Thin: the work is in uicode.service; previews are in uicode.preview."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response

from imagestudio.accounts.deps import CurrentUser, DbSession, RequireVerifiedEmail
from imagestudio.container import ContainerDep
from imagestudio.generations import limits
from imagestudio.kit.errors import ApiError
from imagestudio.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from imagestudio.models import UiGeneration
from imagestudio.uicode import service
from imagestudio.uicode.preview import PREVIEW_HEADERS, check_preview_link
from imagestudio.uicode.schemas import UiGenerationOut
from imagestudio.uicode.views import ui_out

router = APIRouter(tags=["ui-generations"])
_PREVIEW_RESPONSES: dict[int | str, dict] = {200: {"content": {"text/html": {}}, "description": "The document."}}


@router.get("/ui-generations/{ui_id}", response_model=UiGenerationOut)
def get_ui_generation(ui_id: uuid.UUID, db: DbSession, user: CurrentUser, container: ContainerDep) -> UiGenerationOut:
    """A UI generation with its code (once its job succeeded) and a signed link to its preview."""
    view = service.get_ui(db, user.id, ui_id)
    return ui_out(view, container.settings, service.read_code(container.storage, view.row))


@router.get("/sessions/{session_id}/ui-generations", response_model=Page[UiGenerationOut])
def list_ui_generations(
    session_id: uuid.UUID,
    db: DbSession,
    user: CurrentUser,
    container: ContainerDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[UiGenerationOut]:
    """The session's UI generations, newest first (without their code: GET one for it)."""
    views, next_cursor = service.list_session_ui(db, user.id, session_id, limit, cursor)
    return Page(items=[ui_out(view, container.settings) for view in views], next_cursor=next_cursor)


@router.post("/ui-generations/{ui_id}/cancel", response_model=UiGenerationOut)
def cancel_ui_generation(
    ui_id: uuid.UUID, db: DbSession, user: CurrentUser, container: ContainerDep
) -> UiGenerationOut:
    """Cancel: a queued one at once, a running one at its next step. A finished one is answered unchanged."""
    return ui_out(service.cancel_ui(db, user.id, ui_id), container.settings)


@router.post(
    "/ui-generations/{ui_id}/retry",
    status_code=201,
    response_model=UiGenerationOut,
    dependencies=[RequireVerifiedEmail],
)
def retry_ui_generation(ui_id: uuid.UUID, db: DbSession, user: CurrentUser, container: ContainerDep) -> UiGenerationOut:
    """Ask a failed or canceled UI generation again, as a new one; 409 for any other status."""
    limits.consume(db, user, container.settings, 0)
    view = service.retry_ui(db, user.id, ui_id, language=container.language, settings=container.settings)
    return ui_out(view, container.settings)


@router.delete("/ui-generations/{ui_id}", status_code=204, response_class=Response)
def delete_ui_generation(ui_id: uuid.UUID, db: DbSession, user: CurrentUser, container: ContainerDep) -> Response:
    """Delete a finished UI generation and its stored code; 409 while it is queued or running."""
    service.delete_ui(db, container.storage, user.id, ui_id)
    return Response(status_code=204)


@router.get("/ui-generations/{ui_id}/preview", response_class=Response, responses=_PREVIEW_RESPONSES)
def preview_ui_generation(
    ui_id: uuid.UUID,
    db: DbSession,
    container: ContainerDep,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
) -> Response:
    """The document, sandboxed: only through a signed link (no cookie or key is read), served with
    `Content-Security-Policy: sandbox allow-scripts` and no network access."""
    check_preview_link(container.settings, ui_id, expires, signature)
    row = db.get(UiGeneration, ui_id)
    code = service.read_code(container.storage, row) if row is not None else None
    if code is None:
        raise ApiError(404, "not_found", "No such UI generation, or it has no code.")
    return Response(code, media_type="text/html; charset=utf-8", headers=PREVIEW_HEADERS)
