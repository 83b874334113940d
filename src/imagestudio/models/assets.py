"""Assets (every stored file, uploaded or generated) and their captions."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from imagestudio.models.base import Base, StoredImage, created_column, id_column, stored_image_checks, updated_column
from imagestudio.models.enums import CaptionStyle, InputPurpose, enum_check


class Asset(StoredImage, Base):
    __tablename__ = "assets"
    __table_args__ = (
        CheckConstraint("kind IN ('upload', 'output')", name="kind"),
        enum_check("purpose", InputPurpose, nullable=True),
        CheckConstraint(
            "kind <> 'output' OR (generation_id IS NOT NULL AND batch_index IS NOT NULL)", name="output_origin"
        ),
        CheckConstraint("batch_index IS NULL OR batch_index >= 0", name="batch_index"),
        *stored_image_checks(),
        # A retry overwrites the same slot instead of adding a second output.
        UniqueConstraint("generation_id", "batch_index"),
        Index(None, "owner_id", "sha256"),
        Index(None, "session_id", "created_at"),
        Index(None, "owner_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    generation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    batch_index: Mapped[int | None] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    purpose: Mapped[str | None] = mapped_column(String(16))
    storage_key: Mapped[str] = mapped_column(String(512), nullable=False, unique=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String(512))
    original_filename: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    deleted_at: Mapped[datetime | None]
    # When the owner starred it; null: not starred.
    starred_at: Mapped[datetime | None]


class Caption(Base):
    """A caption of an asset. Its job is a generation of type caption (status, attempts, events and
    cancelling live there); the text and the tokens it cost arrive when that job succeeds."""

    __tablename__ = "captions"
    __table_args__ = (
        enum_check("style", CaptionStyle),
        CheckConstraint("prompt_tokens IS NULL OR prompt_tokens >= 0", name="prompt_tokens"),
        CheckConstraint("completion_tokens IS NULL OR completion_tokens >= 0", name="completion_tokens"),
        UniqueConstraint("generation_id"),
        Index(None, "asset_id"),
        Index(None, "owner_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), nullable=False)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    generation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"))
    style: Mapped[str] = mapped_column(String(16), nullable=False, default=CaptionStyle.short.value)
    text: Mapped[str | None] = mapped_column(Text)
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200))
    # False when the text was measured by the built-in describer rather than written by a model.
    by_ai: Mapped[bool | None] = mapped_column(Boolean)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_column()
