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
    # A caption of an asset, written by a language model: a job in the same queue, with no outputs.
    caption = "caption"
    # User-interface code (one HTML document) written for a chat turn: a job with no image outputs.
    ui = "ui"


# What image providers make; captions and UI code are language jobs on the same queue.
IMAGE_TYPES = frozenset(kind for kind in GenerationType if kind not in (GenerationType.caption, GenerationType.ui))


class MessageRole(StrEnum):
    user = "user"
    assistant = "assistant"
    tool = "tool"
    system = "system"


class MessageType(StrEnum):
    """What a message holds (seed 003): words, an image turn, or code."""

    text = "text"
    image = "image"
    code = "code"


class RunStatus(StrEnum):
    queued = "queued"
    processing = "processing"
    succeeded = "succeeded"
    failed = "failed"
    canceled = "canceled"


FINAL_STATUSES = frozenset({RunStatus.succeeded, RunStatus.failed, RunStatus.canceled})


class CaptionStyle(StrEnum):
    short = "short"
    detailed = "detailed"
    # Phrased as a prompt that would recreate the image.
    prompt = "prompt"


class PromptMethod(StrEnum):
    """How the prompt sent to the image provider was made (seed 001's generation method)."""

    language_model = "language_model"
    template = "template"
    none = "none"


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
    "CaptionStyle",
    "EventType",
    "GenerationType",
    "InputPurpose",
    "MailStatus",
    "MessageRole",
    "MessageType",
    "ProjectStatus",
    "PromptMethod",
    "RunStatus",
    "Theme",
    "TokenPurpose",
    "enum_check",
]
