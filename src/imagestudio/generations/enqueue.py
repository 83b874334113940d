"""Putting a generation in the durable queue: the columns that place it there, its queued event, and
the rows of a language job (a caption, a reply or UI code). Functions flush only; the caller commits.

A language job makes no image: it has one "output" (`num_images` 1), no params of its own unless the
caller gives them, priority 0, and the same retry budget as an image generation.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from imagestudio import notify
from imagestudio.config import Settings
from imagestudio.generations.events import GenerationRef, event_rows, insert_events
from imagestudio.kit.errors import ApiError, Invalid
from imagestudio.language import LanguageError, LanguageRegistry
from imagestudio.models import Asset, EventType, Generation, GenerationInput, RunStatus
from imagestudio.models.types import utcnow


def queue_columns(settings: Settings, now: datetime) -> dict[str, Any]:
    """A new generation's place in the queue: no attempt made yet, runnable now, its queued event numbered 1."""
    return {
        "attempt": 0,
        "max_attempts": settings.default_max_attempts,
        "run_after": now,
        "event_seq": 1,
        "created_at": now,
        "updated_at": now,
    }


def language_provider(
    language: LanguageRegistry, provider: str | None, *, invalid: Callable[[str, str], ApiError] = Invalid
) -> str:
    """The language provider a job goes to: the one named, else the default; `invalid("provider", why)`
    for one that is unknown (naming those there are) or not configured."""
    name = provider or language.default_name
    problem = language.problem(name)
    if problem is not None:
        if name not in language:
            problem = f"{problem}; available: {', '.join(language.names())}"
        raise invalid("provider", problem)
    return name


def language_model(
    language: LanguageRegistry,
    name: str,
    model: str | None,
    *,
    vision: bool,
    invalid: Callable[[str, str], ApiError] = Invalid,
) -> str:
    """The model: the one named, else the provider's for text or for pictures; `invalid("model", why)`
    when the provider has none."""
    try:
        return model or language.get(name).model_for(vision=vision)
    except LanguageError as error:
        raise invalid("model", error.message) from None


@dataclass(frozen=True)
class LanguageJob:
    """What a language job is asked to do and where its answer goes."""

    owner_id: uuid.UUID
    type: str
    provider: str
    model: str
    prompt: str
    width: int
    height: int
    session_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    parent_generation_id: uuid.UUID | None = None
    params: dict[str, Any] = field(default_factory=dict)


def add_language_job(
    db: Session, job: LanguageJob, *, settings: Settings, source: Asset | None = None, role: str = "init"
) -> Generation:
    """Add the queued generation (and the picture it reads, if any); its queued event is `announce_queued`'s."""
    now = utcnow()
    generation = Generation(
        owner_id=job.owner_id,
        session_id=job.session_id,
        message_id=job.message_id,
        parent_generation_id=job.parent_generation_id,
        type=job.type,
        status=RunStatus.queued.value,
        provider=job.provider,
        model=job.model,
        prompt=job.prompt,
        prompt_options={},
        width=job.width,
        height=job.height,
        num_images=1,
        params=dict(job.params),
        priority=0,
        **queue_columns(settings, now),
    )
    db.add(generation)
    db.flush()
    if source is not None:
        db.add(GenerationInput(generation_id=generation.id, asset_id=source.id, role=role, position=0))
        db.flush()
    return generation


def announce_queued(db: Session, generation: Generation, **extra: str) -> None:
    """Write a new generation's queued event (sequence 1, with `extra` in its payload) and wake a worker."""
    ref = GenerationRef(generation.id, generation.owner_id, generation.session_id)
    payload = {"priority": generation.priority, "provider": generation.provider, "model": generation.model, **extra}
    at = generation.created_at
    insert_events(db, event_rows(ref, attempt=0, last_sequence=1, events=[(EventType.queued, payload)], at=at))
    notify.announce_work(db)
