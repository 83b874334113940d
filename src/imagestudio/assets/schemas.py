"""Response shapes of /api/v1/assets."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

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
