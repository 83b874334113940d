"""Provider registry state and usage counters for quotas."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from imagestudio.models.base import Base, updated_column
from imagestudio.models.types import JSONType


class ProviderRecord(Base):
    """What the registry knows about a provider, synced at startup and on each model refresh. No secrets."""

    __tablename__ = "providers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    configured: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    configuration_problem: Mapped[str | None] = mapped_column(Text)
    capabilities: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    models: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)
    # When `models` last came from the provider itself (None: the adapter's own table so far), and
    # why the last attempt failed (None when it worked).
    models_refreshed_at: Mapped[datetime | None] = mapped_column()
    refresh_problem: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = updated_column()


class UsageCounter(Base):
    """Counts per user and time window (minute, day), incremented atomically to enforce quotas."""

    __tablename__ = "usage_counters"
    __table_args__ = (
        CheckConstraint("window_kind IN ('minute', 'day')", name="window_kind"),
        CheckConstraint("used >= 0", name="used"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    window_kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class RateCounter(Base):
    """Hits per named bucket (e.g. failed logins of one account or one address) in fixed time windows.

    Shared by every process through the database, incremented with one upsert.
    """

    __tablename__ = "rate_counters"
    __table_args__ = (CheckConstraint("hits >= 0", name="hits"),)

    bucket: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    hits: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
