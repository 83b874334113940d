"""Provider registry state and usage counters for quotas."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, Numeric, String, Text, false, true
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


class ProviderKeyPolicy(Base):
    """An administrator's rule for a hosted provider's keys. A provider without a row keeps the
    defaults: users may not bring keys, and the studio's key serves everyone."""

    __tablename__ = "provider_key_policies"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Users may store their own key for this provider; their generations then use it.
    allow_user_keys: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    # The studio's key serves users who have no key of their own (False: they must bring one).
    studio_key_fallback: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, server_default=true())
    updated_at: Mapped[datetime] = updated_column()


class StudioSettings(Base):
    """Settings an administrator changes while the studio runs: one row (id 1)."""

    __tablename__ = "studio_settings"
    __table_args__ = (
        CheckConstraint("id = 1", name="single_row"),
        CheckConstraint("monthly_budget IS NULL OR monthly_budget >= 0", name="monthly_budget"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    # What the studio's provider keys may spend in a calendar month (UTC) for everyone together.
    monthly_budget: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
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
