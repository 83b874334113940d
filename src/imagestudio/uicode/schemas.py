"""Response shapes of /api/v1/ui-generations."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from imagestudio.generations.schemas import GenerationError
from imagestudio.models import RunStatus


class UiGenerationOut(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID
    # The job in the generations queue: its events are on the session's stream and
    # /api/v1/generations/{generation_id}/events.
    generation_id: uuid.UUID
    # The user's message that asked for it; the assistant's answer (type code) is the job's message.
    message_id: uuid.UUID | None
    assistant_message_id: uuid.UUID | None
    # The version this one revises (lineage; any earlier version of the session).
    parent_id: uuid.UUID | None
    retried_from_generation_id: uuid.UUID | None
    source_asset_id: uuid.UUID | None = Field(description="The image the request showed, if any.")
    status: RunStatus
    error: GenerationError | None
    prompt: str
    title: str | None
    provider: str
    model: str
    by_ai: bool | None = Field(description="False when the built-in composer wrote it: no AI model did.")
    prompt_tokens: int | None
    completion_tokens: int | None
    code_bytes: int | None
    code_sha256: str | None
    removed_references: int | None = Field(
        description="References to the network taken out of the model's document before it was stored."
    )
    # Only in GET /api/v1/ui-generations/{id}; null in lists and until the job succeeded.
    code: str | None = None
    # A signed link to the sandboxed preview (needs no cookie); null until there is code.
    preview_url: str | None
    preview_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
