"""Request and response shapes of /api/v1/sessions and the chat."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, StrictBool, field_validator

from imagestudio.assets.schemas import AssetOut
from imagestudio.generations.schemas import GenerationOut, GenerationOverrides, StrictModel
from imagestudio.generations.spec import Prompt, ReferenceIds
from imagestudio.kit.money import Money
from imagestudio.kit.openapi import not_null
from imagestudio.kit.pagination import Page
from imagestudio.models import limits
from imagestudio.models.enums import MessageRole, MessageType, RunStatus
from imagestudio.uicode.schemas import UiGenerationOut

Context = Annotated[str, Field(max_length=limits.SESSION_CONTEXT_MAX_LENGTH)]


class SessionCreate(StrictModel):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    project_id: uuid.UUID | None = None
    # A note the assistant reads for every language-model call of the session (e.g. brand colours).
    context: Context = ""
    # When to archive the session by itself (cleanup does it); null: never.
    expires_at: AwareDatetime | None = None


class SessionUpdate(StrictModel):
    # Leave it out to keep the title; null is refused.
    title: str | None = Field(default=None, min_length=1, max_length=200, json_schema_extra=not_null)
    project_id: uuid.UUID | None = None
    archived: StrictBool | None = None
    # Leave it out to keep the context; "" clears it, null is refused.
    context: Annotated[Context | None, Field(json_schema_extra=not_null)] = None
    expires_at: AwareDatetime | None = None
    # The cover: one of the session's images; null returns to the default, the newest image.
    thumbnail_asset_id: uuid.UUID | None = None

    @field_validator("context")
    @classmethod
    def _context_not_null(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("may not be null")
        return value


class SessionOut(BaseModel):
    id: uuid.UUID
    title: str
    project_id: uuid.UUID | None
    thumbnail_asset_id: uuid.UUID | None
    thumbnail_url: str | None
    # True when the owner picked the cover; false while it follows the newest image.
    thumbnail_is_custom: bool
    image_count: int
    message_count: int
    last_provider: str | None
    last_model: str | None
    archived: bool
    context: str = ""
    expires_at: datetime | None = None
    created_at: datetime
    # Last activity: bumped by every message, generation and output.
    updated_at: datetime


class MessageOut(BaseModel):
    id: uuid.UUID
    role: MessageRole
    type: MessageType
    content: str
    parent_message_id: uuid.UUID | None
    status: RunStatus | None
    generation_id: uuid.UUID | None
    # The model that answered (an assistant turn), and the tokens a language model used for it.
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    # A reply's suggestion: a prompt the studio offers to send with one click.
    suggested_prompt: str | None = None
    by_ai: bool | None = Field(
        default=None, description="A reply's: false when no language model wrote it (the built-in facts answer)."
    )
    attachments: list[AssetOut]
    created_at: datetime


class LineageNode(BaseModel):
    """A generation in the session's branching history; children iterate from it. Every step of the
    session is here, also those the detail leaves to older pages: enough to draw the history and to
    find a step (its status and first image), not the generation itself.

    parent_generation_id is the generation it iterates on. A root whose parent is in the same
    session continues a chain of iterations too long to nest further."""

    generation_id: uuid.UUID
    step: int
    children: list[LineageNode]
    parent_generation_id: uuid.UUID | None = None
    status: RunStatus
    # Its first image that is not deleted (GET /api/v1/assets/{id}/thumbnail); null: none.
    thumbnail_asset_id: uuid.UUID | None = None


class SessionDetail(SessionOut):
    # What its generations cost together (those with a price; free ones add nothing).
    total_cost: Money
    # The newest steps (see `steps`): their messages, in order, and their generations, in step order.
    messages: list[MessageOut]
    generations: list[GenerationOut]
    # Every step of the session.
    lineage: list[LineageNode]
    steps_cursor: str | None = Field(
        default=None,
        description="Older steps: pass it as `cursor` to GET /sessions/{id}/steps; null when all are here.",
    )
    last_event_id: int = Field(
        ge=0,
        description="Open the session's stream with `?after=` this to receive only what this answer does not "
        "show: the id of your newest event when it was read (0 before any), or, while an answer is being "
        "written, the id just before that answer's first event (its text so far is only in its events).",
    )


class StepPage(Page[GenerationOut]):
    """Older steps of a session, newest first: their generations (`items`) and the messages of their
    turns (`messages`, newest first). Pass next_cursor back as `cursor`; null means the first step."""

    messages: list[MessageOut]


class TurnMode(StrEnum):
    iterate = "iterate"  # img2img from the chosen (default: latest) output
    fresh = "fresh"  # text2img, ignoring earlier outputs
    upscale = "upscale"
    variation = "variation"
    ui = "ui"  # user-interface code from the words and/or an image (see ui-generations)
    # A text answer from the language model to a question about the session; no image is made.
    reply = "reply"


class ChatTurnCreate(GenerationOverrides):
    content: Prompt = ""
    mode: TurnMode = TurnMode.iterate
    # Any earlier output (branching); default: the session's latest output.
    source_asset_id: uuid.UUID | None = None
    # With a mask the turn is an inpaint of the source image.
    mask_asset_id: uuid.UUID | None = None
    # Uploads shown with the message; as many as a generation takes reference images.
    attachment_ids: ReferenceIds = Field(default_factory=list)
    # Mode ui: the version to revise. Left out: the session's latest, unless the turn shows an image
    # (source_asset_id or an attachment), which starts a new line from that image.
    parent_ui_generation_id: uuid.UUID | None = None


class ChatTurnOut(BaseModel):
    user_message: MessageOut
    assistant_message: MessageOut
    # The job answering the turn (for mode ui, the UI generation's job).
    generation_id: uuid.UUID
    generation: GenerationOut
    # Mode ui only.
    ui_generation_id: uuid.UUID | None = None
    ui_generation: UiGenerationOut | None = None
