"""Response shapes of /api/v1/assets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

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
    # When you starred it; null: not starred.
    starred_at: datetime | None = None
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


class AssetUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starred: StrictBool


class GalleryItem(AssetOut):
    """An image with what made it: the prompt, provider and model of its generation, its session
    and step (null outside a session), and the name a download of it gets."""

    prompt: str | None
    provider: str | None
    model: str | None
    session_title: str | None
    step: int | None
    download_name: str
