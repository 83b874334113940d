"""Generations (the durable job and the queue), their inputs and their append-only event log."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from imagestudio.models.base import Base, StoredImage, created_column, id_column, stored_image_checks, updated_column
from imagestudio.models.enums import EventType, GenerationType, InputPurpose, PromptMethod, RunStatus, enum_check
from imagestudio.models.limits import NUM_IMAGES_MAX, NUM_IMAGES_MIN
from imagestudio.models.types import BigIntId, JSONType, utcnow

_QUEUED = text("status = 'queued'")
_PROCESSING = text("status = 'processing'")
_CLEANUP = text("cleanup_pending")


class Generation(Base):
    __tablename__ = "generations"
    __table_args__ = (
        enum_check("type", GenerationType),
        enum_check("status", RunStatus),
        enum_check("prompt_method", PromptMethod, nullable=True),
        CheckConstraint(f"num_images BETWEEN {NUM_IMAGES_MIN} AND {NUM_IMAGES_MAX}", name="num_images"),
        CheckConstraint("width > 0 AND height > 0", name="size_positive"),
        CheckConstraint("strength IS NULL OR (strength >= 0 AND strength <= 1)", name="strength"),
        CheckConstraint("steps IS NULL OR steps > 0", name="steps"),
        CheckConstraint("guidance IS NULL OR guidance >= 0", name="guidance"),
        CheckConstraint("seed IS NULL OR seed >= 0", name="seed"),
        CheckConstraint("upscale_factor IS NULL OR upscale_factor BETWEEN 2 AND 8", name="upscale_factor"),
        CheckConstraint("attempt >= 0 AND max_attempts >= 1 AND attempt <= max_attempts", name="attempts"),
        CheckConstraint("running_slot IS NULL OR running_slot >= 0", name="running_slot"),
        CheckConstraint("cost IS NULL OR cost >= 0", name="cost"),
        UniqueConstraint("owner_id", "idempotency_key"),
        UniqueConstraint("message_id"),
        # At most max_running generations of one user hold a slot at once (fairness without races).
        Index(
            "uq_generations_owner_running_slot",
            "owner_id",
            "running_slot",
            unique=True,
            postgresql_where=text("running_slot IS NOT NULL"),
            sqlite_where=text("running_slot IS NOT NULL"),
        ),
        # The reaper: running rows by lease expiry.
        Index("ix_generations_lease", "lease_expires_at", postgresql_where=_PROCESSING, sqlite_where=_PROCESSING),
        Index(None, "session_id", "created_at"),
        Index(None, "owner_id", "created_at"),
        Index(None, "status"),
        Index(None, "parent_generation_id"),
        Index(None, "retried_from_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    parent_generation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("generations.id", ondelete="SET NULL"))
    retried_from_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("generations.id", ondelete="SET NULL"))

    type: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=RunStatus.queued.value)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    # The provider that finally served it, when a fallback chain moved it elsewhere.
    served_by: Mapped[str | None] = mapped_column(String(64))

    prompt: Mapped[str] = mapped_column(Text, nullable=False, default="")
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    # The prompt as sent to the provider, when it differs from the prompt written: composed from the
    # prompt options, or written by a language model (prompt_method says which).
    enhanced_prompt: Mapped[str | None] = mapped_column(Text)
    # The provider's own rewrite of the prompt it rendered (OpenAI reports one), when it reports one.
    revised_prompt: Mapped[str | None] = mapped_column(Text)
    # Asked for a language model to rewrite the prompt; prompt_method says how it was made in the
    # end (null until a worker decided), prompt_plan by which model, or why the template stood in.
    enhance_prompt: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    prompt_method: Mapped[str | None] = mapped_column(String(16))
    prompt_plan: Mapped[dict | None] = mapped_column(JSONType)
    # Seed 001's prompt builder: shot_type, camera_angle, style, location, lighting, weather, custom.
    prompt_options: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    aspect_ratio: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    num_images: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    steps: Mapped[int | None] = mapped_column(Integer)
    guidance: Mapped[float | None] = mapped_column(Float)
    strength: Mapped[float | None] = mapped_column(Float)
    scheduler: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int | None] = mapped_column(BigInteger)
    upscale_factor: Mapped[int | None] = mapped_column(Integer)
    # Provider-specific extras (quality, style presets, ...).
    params: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    usage: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    # The owner's own provider key paid for it (not the studio's), so it counts against no budget.
    own_key: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    progress_step: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # A digest of the creating request, so a reused key with a different body is caught.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))

    # Queue columns.
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    run_after: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    running_slot: Mapped[int | None] = mapped_column(Integer)
    event_seq: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Set when an unsuccessful generation may have left objects in storage (a crashed attempt wrote
    # them); the engine's sweeper deletes them and clears the flag, so cleanup survives crashes.
    cleanup_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())

    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(Integer)


# The queue: only queued rows, in claim order (highest priority first, then oldest).
Index(
    "ix_generations_claim",
    Generation.priority.desc(),
    Generation.id,
    postgresql_where=_QUEUED,
    sqlite_where=_QUEUED,
)
# The sweeper: unsuccessful generations whose stored objects still need deleting.
Index("ix_generations_cleanup", Generation.id, postgresql_where=_CLEANUP, sqlite_where=_CLEANUP)


class GenerationInput(Base):
    __tablename__ = "generation_inputs"
    __table_args__ = (enum_check("role", InputPurpose), Index(None, "asset_id"))

    generation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True)
    asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("assets.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class BatchImage(StoredImage, Base):
    """One image of a batch, stored as it arrived from a provider that makes one image per call,
    before the batch is done. A retry makes only the indices missing here; success turns these
    rows into assets, and the sweeper removes what an unsuccessful generation left."""

    __tablename__ = "batch_images"
    __table_args__ = (
        CheckConstraint(f"batch_index >= 0 AND batch_index < {NUM_IMAGES_MAX}", name="batch_index"),
        CheckConstraint("attempt >= 1", name="attempt"),
        *stored_image_checks(),
        CheckConstraint("cost IS NULL OR cost >= 0", name="cost"),
        # One image per index: a retry never makes an index twice.
        UniqueConstraint("generation_id", "batch_index"),
    )

    id: Mapped[uuid.UUID] = id_column()
    generation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), nullable=False)
    batch_index: Mapped[int] = mapped_column(Integer, nullable=False)
    # The attempt that made it, and by which provider and model (another one's images are not reused).
    attempt: Mapped[int] = mapped_column(Integer, nullable=False)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(200), nullable=False)
    storage_key: Mapped[str] = mapped_column(String(512), nullable=False)
    # None: made on the first thumbnail request of the asset it becomes.
    thumbnail_key: Mapped[str | None] = mapped_column(String(512))
    # What the call that made it reported and cost, so the batch's totals stay exact across attempts.
    usage: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    revised_prompt: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()


class GenerationEvent(Base):
    """Append-only lifecycle log.

    `sequence` numbers one generation's events (taken under its row lock). `position` numbers one
    owner's events in commit order (taken under the owner's row in event_counters, held to commit),
    so every stream (a generation, a session, all of a user's) replays from a position without
    gaps or repeats, and no lock wider than one user orders anything. `id` is only a row key."""

    __tablename__ = "generation_events"
    __table_args__ = (
        enum_check("type", EventType),
        UniqueConstraint("generation_id", "sequence"),
        UniqueConstraint("owner_id", "position"),
        Index(None, "session_id", "position"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    generation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("generations.id", ondelete="CASCADE"), nullable=False)
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    sequence: Mapped[int] = mapped_column(Integer, nullable=False)
    position: Mapped[int] = mapped_column(BigInteger, nullable=False)
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    type: Mapped[str] = mapped_column(String(24), nullable=False)
    payload: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    created_at: Mapped[datetime] = created_column()


class EventCounter(Base):
    """The last event position given out per owner. Bumped by every transaction that writes events
    and locked until it commits: that lock is what orders one user's events, and only theirs."""

    __tablename__ = "event_counters"

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    last_position: Mapped[int] = mapped_column(BigInteger, nullable=False)
