"""/api/v1/assets/{id}/captions: ask for a caption (a durable job) and list an asset's captions."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from imagestudio.accounts.deps import CurrentUser, DbSession
from imagestudio.container import ContainerDep
from imagestudio.generations import limits
from imagestudio.generations.captions import CaptionView, list_captions, request_caption
from imagestudio.generations.schemas import GenerationError
from imagestudio.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from imagestudio.models import CaptionStyle, RunStatus

router = APIRouter(tags=["captions"])


class CaptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    style: CaptionStyle = Field(
        default=CaptionStyle.short,
        description="short: one sentence; detailed: a paragraph; prompt: a prompt that would recreate the image.",
    )
    provider: str | None = Field(default=None, min_length=1, max_length=64, description="A language provider.")
    model: str | None = Field(default=None, min_length=1, max_length=200)


class CaptionOut(BaseModel):
    id: uuid.UUID
    asset_id: uuid.UUID
    # The job writing it: GET /api/v1/generations/{id}/events streams its status, /cancel stops it.
    generation_id: uuid.UUID | None
    status: RunStatus
    style: CaptionStyle
    text: str | None
    provider: str | None
    model: str | None
    by_ai: bool | None = Field(description="False when the built-in describer measured the text; no model wrote it.")
    prompt_tokens: int | None
    completion_tokens: int | None
    image_type: str = Field(description="The described image's format: png, jpeg, webp, ...")
    error: GenerationError | None
    created_at: datetime


def _out(view: CaptionView) -> CaptionOut:
    caption = view.caption
    error = None
    if view.error_code or view.error_message:
        error = GenerationError(code=view.error_code or "error", message=view.error_message or "")
    return CaptionOut(
        id=caption.id,
        asset_id=caption.asset_id,
        generation_id=caption.generation_id,
        status=view.status,
        style=caption.style,
        text=caption.text,
        provider=caption.provider,
        model=caption.model,
        by_ai=caption.by_ai,
        prompt_tokens=caption.prompt_tokens,
        completion_tokens=caption.completion_tokens,
        image_type=view.mime_type.removeprefix("image/"),
        error=error,
        created_at=caption.created_at,
    )


@router.post("/assets/{asset_id}/captions", status_code=202, response_model=CaptionOut)
def post_caption(
    asset_id: uuid.UUID,
    db: DbSession,
    user: CurrentUser,
    container: ContainerDep,
    body: CaptionCreate | None = None,
) -> CaptionOut:
    """Queue a caption of an image you own (an output or an upload). Answers at once (202); the
    caption's job runs in the generations queue: follow it on /api/v1/generations/{generation_id}/events."""
    body = body or CaptionCreate()
    # A caption counts against the per-minute request rate (it may cost money), not the image quota.
    limits.consume(db, user, container.settings, 0)
    view = request_caption(
        db,
        owner_id=user.id,
        asset_id=asset_id,
        style=body.style,
        provider=body.provider,
        model=body.model,
        language=container.language,
        settings=container.settings,
    )
    return _out(view)


@router.get("/assets/{asset_id}/captions", response_model=Page[CaptionOut])
def get_captions(
    asset_id: uuid.UUID,
    db: DbSession,
    user: CurrentUser,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[CaptionOut]:
    """The asset's captions, newest first, each with its job's status."""
    views, next_cursor = list_captions(db, owner_id=user.id, asset_id=asset_id, limit=limit, cursor=cursor)
    return Page[CaptionOut](items=[_out(view) for view in views], next_cursor=next_cursor)
