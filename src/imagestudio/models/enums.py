"""Enumerations stored as checked strings (portable, and cheap to extend with a migration)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import CheckConstraint


class GenerationType(StrEnum):
    text2img = "text2img"
    img2img = "img2img"
    inpaint = "inpaint"
    upscale = "upscale"
    variation = "variation"


class MessageRole(StrEnum):
    user = "user"
    assistant = "assistant"
    tool = "tool"
    system = "system"


class RunStatus(StrEnum):
    queued = "queued"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


FINAL_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.canceled})


class InputPurpose(StrEnum):
    init = "init"
    mask = "mask"
    reference = "reference"
    attachment = "attachment"


class ProjectStatus(StrEnum):
    draft = "draft"
    active = "active"
    completed = "completed"
    archived = "archived"


class Theme(StrEnum):
    light = "light"
    dark = "dark"
    system = "system"


class TokenPurpose(StrEnum):
    invitation = "invitation"
    password_reset = "password_reset"
    email_verification = "email_verification"


class MailStatus(StrEnum):
    queued = "queued"
    sent = "sent"
    failed = "failed"


class EventType(StrEnum):
    queued = "queued"
    started = "started"
    progress = "progress"
    output_stored = "output_stored"
    retrying = "retrying"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"
    cancel_requested = "cancel_requested"


def enum_check(column: str, enum: type[StrEnum], name: str | None = None, nullable: bool = False) -> CheckConstraint:
    values = ", ".join(f"'{member.value}'" for member in enum)
    condition = f"{column} IN ({values})"
    if nullable:
        condition = f"{column} IS NULL OR {condition}"
    return CheckConstraint(condition, name=name or column)


__all__ = [
    "FINAL_STATUSES",
    "EventType",
    "GenerationType",
    "InputPurpose",
    "MailStatus",
    "MessageRole",
    "ProjectStatus",
    "RunStatus",
    "Theme",
    "TokenPurpose",
    "enum_check",
]
