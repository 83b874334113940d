"""Sessions (conversations and their generations), messages and message attachments."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from imagestudio.models.base import Base, created_column, id_column, updated_column
from imagestudio.models.enums import MessageRole, MessageType, RunStatus, enum_check
from imagestudio.models.types import JSONType

DEFAULT_SESSION_TITLE = "New session"


class ChatSession(Base):
    """A session: one conversation with its generations. (A login is an AuthSession.)"""

    __tablename__ = "sessions"
    __table_args__ = (
        Index(None, "owner_id", "updated_at"),
        Index(None, "project_id"),
        CheckConstraint("image_count >= 0", name="image_count"),
        CheckConstraint("message_count >= 0", name="message_count"),
    )

    id: Mapped[uuid.UUID] = id_column()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200), nullable=False, default=DEFAULT_SESSION_TITLE)
    # False while the title is still the automatic one, so the first prompt may replace it.
    title_is_custom: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # use_alter: sessions and assets reference each other.
    thumbnail_asset_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("assets.id", ondelete="SET NULL", use_alter=True)
    )
    # True once the owner picked the cover; until then it follows the latest output.
    thumbnail_is_custom: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    image_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    message_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_provider: Mapped[str | None] = mapped_column(String(64))
    last_model: Mapped[str | None] = mapped_column(String(200))
    archived_at: Mapped[datetime | None]
    # A note every language-model call of the session reads (brand colours, audience, tone).
    context: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")
    # Seed 003's session expiry: past it, cleanup archives the session.
    expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = created_column()


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        enum_check("role", MessageRole),
        enum_check("type", MessageType),
        enum_check("status", RunStatus, nullable=True),
        Index(None, "session_id", "created_at"),
        Index(None, "parent_message_id"),
        CheckConstraint(
            "(prompt_tokens IS NULL OR prompt_tokens >= 0) AND (completion_tokens IS NULL OR completion_tokens >= 0)",
            name="token_usage",
        ),
    )

    id: Mapped[uuid.UUID] = id_column()
    session_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False)
    author_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    content: Mapped[str] = mapped_column(Text, nullable=False, default="")
    type: Mapped[str] = mapped_column(
        String(8), nullable=False, default=MessageType.text.value, server_default=MessageType.text.value
    )
    parent_message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    # Assistant turns mirror their generation's status.
    status: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class MessageAttachment(Base):
    __tablename__ = "message_attachments"
    __table_args__ = (Index(None, "asset_id"),)

    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
