"""UI generations (seed 003's ui_generations): user-interface code a language model, or the built-in
composer, wrote for a chat turn. The job that writes it is a generation of type `ui` in the same
queue as images (status, attempts, cancel and events live there); this row keeps what is particular
to code: the request, its lineage, the stored document, its size, hash and token usage."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from imagestudio.models.base import Base, created_column, id_column, updated_column


class UiGeneration(Base):
    __tablename__ = "ui_generations"
    __table_args__ = (
        CheckConstraint("code_bytes IS NULL OR code_bytes >= 0", name="code_bytes"),
        CheckConstraint("prompt_tokens IS NULL OR prompt_tokens >= 0", name="prompt_tokens"),
        CheckConstraint("completion_tokens IS NULL OR completion_tokens >= 0", name="completion_tokens"),
        CheckConstraint("(storage_key IS NULL) = (code_sha256 IS NULL)", name="code_stored"),
        Index(None, "session_id", "created_at"),
        Index(None, "owner_id", "created_at"),
        Index(None, "parent_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False)
    # The job: its status, error, attempts, timings and events.
    generation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    # The user's message that asked for it (the assistant's answer is the job's message).
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    # The version this one revises (iterating), any earlier one of the session: lineage branches.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ui_generations.id", ondelete="SET NULL"))
    # An image the request showed (a mockup, a screenshot, an output of the session).
    source_asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("assets.id", ondelete="SET NULL"))
    prompt: Mapped[str] = mapped_column(Text, nullable=False, default="")
    title: Mapped[str | None] = mapped_column(String(200))
    # The stored document (text/html), written by the job that succeeded.
    storage_key: Mapped[str | None] = mapped_column(String(512), unique=True)
    code_bytes: Mapped[int | None] = mapped_column(Integer)
    code_sha256: Mapped[str | None] = mapped_column(String(64))
    # References to the network the validator removed from the model's document.
    removed_references: Mapped[int | None] = mapped_column(Integer)
    by_ai: Mapped[bool | None] = mapped_column(Boolean)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
