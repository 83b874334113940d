"""Response shapes of /api/v1/assets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imagestudio.assets.links import MAX_LINK_SECONDS, MIN_LINK_SECONDS
from imagestudio.models.enums import InputPurpose


class AssetOut(BaseModel):
    id: uuid.UUID
    kind: Literal["upload", "output"]
    purpose: InputPurpose | None
    session_id: uuid.UUID | None
    generation_id: uuid.UUID | None
    batch_index: int | None
    mime_type: str
    bytes: int
    width: int
    height: int
    sha256: str
    seed: int | None
    created_at: datetime
    # Same-origin URLs: /api/v1/assets/{id}/content and /api/v1/assets/{id}/thumbnail.
    content_url: str
    thumbnail_url: str
    # Only with ?include=b64_json: the image itself, base64-encoded.
    b64_json: str | None = None


class AssetLinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_in: int | None = Field(
        default=None,
        ge=MIN_LINK_SECONDS,
        le=MAX_LINK_SECONDS,
        description="Seconds the link stays valid (default: the server's signed_link_seconds).",
    )


class AssetLinkOut(BaseModel):
    url: str
    expires_at: datetime
