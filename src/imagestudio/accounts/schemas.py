"""Request and response bodies of the account endpoints. Requests refuse unknown fields."""

from __future__ import annotations

import uuid
import zoneinfo
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator

from imagestudio.accounts.security import PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH
from imagestudio.accounts.service import EMAIL_MAX_LENGTH, EMAIL_PATTERN
from imagestudio.kit.money import AmountText
from imagestudio.kit.openapi import bounded_int, not_null
from imagestudio.models import limits

# The shape service.email_problem checks, stated for clients (it answers with its own message).
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=EMAIL_MAX_LENGTH,
        json_schema_extra={"pattern": EMAIL_PATTERN},
    ),
]
NewPassword = Annotated[str, Field(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_LENGTH)]
# Existing passwords are checked, not judged: only bounded.
GivenPassword = Annotated[str, Field(min_length=1, max_length=PASSWORD_MAX_LENGTH)]
DisplayName = Annotated[str, Field(max_length=200)]
Scope = Literal["read", "generate", "admin"]
Number = StrictInt | StrictFloat


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# --- auth ----------------------------------------------------------------------------------


class SetupStatus(ResponseModel):
    setup_required: bool
    signup_open: bool


class NewAccount(RequestModel):
    email: Email
    password: NewPassword
    display_name: DisplayName = ""


class LoginRequest(RequestModel):
    email: Email
    password: GivenPassword


class UserOut(ResponseModel):
    id: uuid.UUID
    email: str
    display_name: str
    is_admin: bool
    is_active: bool
    daily_image_quota: int | None
    rate_per_minute: int | None
    max_running: int | None
    # What the studio's provider keys may spend for this user a month (a decimal string in the price
    # table's currency, USD); null: no budget of their own.
    monthly_budget: Decimal | None
    created_at: datetime
    last_login_at: datetime | None
    password_changed_at: datetime | None
    email_verified_at: datetime | None


class MeUpdate(RequestModel):
    display_name: DisplayName


class PasswordChange(RequestModel):
    current_password: GivenPassword
    new_password: NewPassword


# --- accounts by email ---------------------------------------------------------------------------

# Links carry 43 characters of URL-safe base64; anything far off is not a token of ours.
LinkToken = Annotated[str, Field(min_length=16, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]


class InvitationCreate(RequestModel):
    email: Email


class InvitationOut(ResponseModel):
    id: uuid.UUID
    email: str
    status: Literal["pending", "accepted", "revoked", "expired"]
    invited_by_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    accepted_at: datetime | None
    revoked_at: datetime | None


class InvitationCreated(InvitationOut):
    mail_queued: bool = Field(description="True when the link was mailed to the address.")
    link: str | None = Field(
        description="The invitation link, only when no SMTP server is configured: hand it over yourself."
    )


class InvitationAccept(RequestModel):
    token: LinkToken
    password: NewPassword
    display_name: DisplayName = ""


class PasswordResetRequest(RequestModel):
    email: Email


class PasswordResetConfirm(RequestModel):
    token: LinkToken
    password: NewPassword


class VerifyEmailRequest(RequestModel):
    token: LinkToken


class EmailVerified(ResponseModel):
    email: str
    email_verified_at: datetime


class EmailChange(RequestModel):
    email: Email
    password: GivenPassword


class Accepted(ResponseModel):
    detail: str
    mail_queued: bool


class ResetLinkOut(ResponseModel):
    link: str
    expires_at: datetime


# --- API keys ------------------------------------------------------------------------------


class ApiKeyCreate(RequestModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)] = ["read", "generate"]
    expires_at: AwareDatetime | None = None
    rate_limit_per_minute: bounded_int(1, 100_000) | None = None


class ApiKeyOut(ResponseModel):
    id: uuid.UUID
    name: str
    prefix: str
    scopes: list[str]
    rate_limit_per_minute: int | None
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    usage_count: int
    created_at: datetime


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The full key. It is shown only in this answer; store it now.")


# --- user settings -------------------------------------------------------------------------


class DefaultParams(RequestModel):
    """Defaults for a generation's params, within the same limits as a request's (models/limits.py)."""

    steps: bounded_int(limits.STEPS_MIN, limits.STEPS_MAX) | None = None
    guidance: Annotated[Number, Field(ge=limits.GUIDANCE_MIN, le=limits.GUIDANCE_MAX)] | None = None
    strength: Annotated[Number, Field(ge=limits.STRENGTH_MIN, le=limits.STRENGTH_MAX)] | None = None
    scheduler: Annotated[str, Field(min_length=1, max_length=limits.SCHEDULER_MAX_LENGTH)] | None = None
    seed: bounded_int(limits.SEED_MIN, limits.SEED_MAX) | None = None


@lru_cache(maxsize=1)
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


class SettingsOut(ResponseModel):
    theme: str
    language: str
    timezone: str
    default_provider: str | None
    default_model: str | None
    default_params: dict
    # New generations and chat turns ask the language model to rewrite their prompt.
    enhance_prompt: bool
    notifications: dict


def _timezone_schema(schema: dict) -> None:
    not_null(schema)
    schema["enum"] = sorted(_timezones())


class SettingsUpdate(RequestModel):
    theme: Annotated[Literal["light", "dark", "system"] | None, Field(json_schema_extra=not_null)] = None
    language: Annotated[
        str | None,
        Field(pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$", max_length=16, json_schema_extra=not_null),
    ] = None
    timezone: Annotated[str | None, Field(max_length=64, json_schema_extra=_timezone_schema)] = None
    default_provider: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")] | None = None
    default_model: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    default_params: DefaultParams | None = None
    enhance_prompt: Annotated[StrictBool | None, Field(json_schema_extra=not_null)] = None
    notifications: Annotated[dict[Annotated[str, Field(max_length=64)], StrictBool], Field(max_length=20)] | None = None

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        if value is not None and value not in _timezones():
            raise ValueError("is not a known IANA time zone (e.g. Europe/Paris)")
        return value

    @field_validator("theme", "language", "timezone", "enhance_prompt")
    @classmethod
    def _not_null(cls, value: str | None) -> str | None:
        # These always have a value; leave them out to keep the current one.
        if value is None:
            raise ValueError("may not be null")
        return value


# --- admin ---------------------------------------------------------------------------------


class AdminUserCreate(NewAccount):
    is_admin: StrictBool = False


class AdminUserUpdate(RequestModel):
    is_active: Annotated[StrictBool | None, Field(json_schema_extra=not_null)] = None
    is_admin: Annotated[StrictBool | None, Field(json_schema_extra=not_null)] = None
    daily_image_quota: bounded_int(0, 1_000_000) | None = None
    rate_per_minute: bounded_int(0, 100_000) | None = None
    max_running: bounded_int(1, 100) | None = None
    # A decimal string ("25", "12.50"); null removes the user's own budget.
    monthly_budget: AmountText | None = None

    @field_validator("is_active", "is_admin")
    @classmethod
    def _not_null(cls, value: bool | None) -> bool | None:
        if value is None:
            raise ValueError("may not be null")
        return value


class AuditEventOut(ResponseModel):
    id: uuid.UUID
    created_at: datetime
    actor_id: uuid.UUID | None
    actor_email: str | None
    action: str
    target_type: str | None
    target_id: str | None
    address: str | None
    details: dict
