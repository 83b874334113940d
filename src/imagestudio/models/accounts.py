"""Users, logins (auth sessions), API keys, user settings and projects."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from imagestudio.models.base import Base, created_column, id_column, updated_column
from imagestudio.models.enums import ProjectStatus, Theme, TokenPurpose, enum_check
from imagestudio.models.types import JSONType


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("email = lower(email)", name="email_lowercase"),
        CheckConstraint("daily_image_quota IS NULL OR daily_image_quota >= 0", name="daily_image_quota"),
        CheckConstraint("rate_per_minute IS NULL OR rate_per_minute >= 0", name="rate_per_minute"),
        CheckConstraint("max_running IS NULL OR max_running >= 1", name="max_running"),
        CheckConstraint("monthly_budget IS NULL OR monthly_budget >= 0", name="monthly_budget"),
    )

    id: Mapped[uuid.UUID] = id_column()
    email: Mapped[str] = mapped_column(String(320), nullable=False, unique=True)
    display_name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Per-user limits set by an admin; NULL falls back to the configured defaults.
    daily_image_quota: Mapped[int | None] = mapped_column(Integer)
    rate_per_minute: Mapped[int | None] = mapped_column(Integer)
    max_running: Mapped[int | None] = mapped_column(Integer)
    # What the studio's provider keys may spend for this user in a calendar month (UTC), in the
    # price table's currency; NULL: no budget of their own.
    monthly_budget: Mapped[Decimal | None] = mapped_column(Numeric(12, 6))
    password_changed_at: Mapped[datetime | None]
    # When the owner proved they read mail at this address (NULL: not yet).
    email_verified_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class AuthSession(Base):
    """A login. Only a hash of its token is stored."""

    __tablename__ = "auth_sessions"
    __table_args__ = (Index(None, "user_id"), Index(None, "expires_at"))

    id: Mapped[uuid.UUID] = id_column()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    created_at: Mapped[datetime] = created_column()
    last_seen_at: Mapped[datetime] = created_column()
    idle_expires_at: Mapped[datetime] = mapped_column(nullable=False)
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(400))


class AccountToken(Base):
    """A single-use link sent by mail: an invitation, a password reset or an email confirmation.

    Only a hash of the token is stored. `email` is the address the link was sent to (for an
    invitation, the account to create; for a confirmation, the address to confirm).
    """

    __tablename__ = "account_tokens"
    __table_args__ = (
        enum_check("purpose", TokenPurpose),
        Index(None, "purpose", "created_at"),
        Index(None, "user_id"),
    )

    id: Mapped[uuid.UUID] = id_column()
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(128), nullable=False, unique=True)
    email: Mapped[str] = mapped_column(String(320), nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = created_column()
    expires_at: Mapped[datetime] = mapped_column(nullable=False)
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        Index(None, "user_id"),
        CheckConstraint("usage_count >= 0", name="usage_count"),
        CheckConstraint("rate_limit_per_minute IS NULL OR rate_limit_per_minute > 0", name="rate_limit"),
    )

    id: Mapped[uuid.UUID] = id_column()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    prefix: Mapped[str] = mapped_column(String(32), nullable=False, unique=True)
    key_hash: Mapped[str] = mapped_column(String(128), nullable=False)
    scopes: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    usage_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = created_column()


class UserSettings(Base):
    __tablename__ = "user_settings"
    __table_args__ = (enum_check("theme", Theme),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    theme: Mapped[str] = mapped_column(String(16), nullable=False, default=Theme.system.value)
    language: Mapped[str] = mapped_column(String(16), nullable=False, default="en")
    timezone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    default_provider: Mapped[str | None] = mapped_column(String(64))
    default_model: Mapped[str | None] = mapped_column(String(200))
    default_params: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    # New generations ask a language model to rewrite their prompt unless they say otherwise.
    enhance_prompt: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    notifications: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    updated_at: Mapped[datetime] = updated_column()


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (
        enum_check("status", ProjectStatus),
        Index(None, "owner_id", "updated_at"),
        # A public project has a link, a private one none.
        CheckConstraint("is_public = (public_token_hash IS NOT NULL)", name="public_link"),
    )

    id: Mapped[uuid.UUID] = id_column()
    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=ProjectStatus.active.value)
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # Defaults for the project's sessions (provider, model, size, params, prompt options).
    settings: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
    # SHA-256 of the public link's token while the project is published; the token itself is never stored.
    public_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    published_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()


class UserProviderKey(Base):
    """A user's own key for a hosted provider, sealed under the studio's secret (kit/sealing.py).

    `sealed` opens only with the studio's secret and only for this user and provider; `hint` is
    the key's last four characters, all that is ever shown of it."""

    __tablename__ = "user_provider_keys"
    __table_args__ = (UniqueConstraint("user_id", "provider"),)

    id: Mapped[uuid.UUID] = id_column()
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    provider: Mapped[str] = mapped_column(String(64), nullable=False)
    sealed: Mapped[str] = mapped_column(Text, nullable=False)
    hint: Mapped[str] = mapped_column(String(8), nullable=False)
    created_at: Mapped[datetime] = created_column()
    updated_at: Mapped[datetime] = updated_column()
