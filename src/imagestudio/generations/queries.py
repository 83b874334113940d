"""Reading a user's generations: the filtered list and the prompt history."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imagestudio.generations.schemas import PromptHistoryItem
from imagestudio.kit.pagination import decode_offset, encode_offset, keyset_page
from imagestudio.kit.text import like_pattern
from imagestudio.models import LANGUAGE_TYPES, Generation, GenerationType, RunStatus


@dataclass(frozen=True)
class GenerationFilters:
    session_id: uuid.UUID | None = None
    status: RunStatus | None = None
    type: GenerationType | None = None
    provider: str | None = None
    model: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def list_generations(
    db: Session, owner_id: uuid.UUID, filters: GenerationFilters, limit: int, cursor: str | None
) -> tuple[Sequence[Generation], str | None]:
    """The user's generations matching every filter given, newest first."""
    statement = select(Generation).where(Generation.owner_id == owner_id)
    if filters.session_id is not None:
        statement = statement.where(Generation.session_id == filters.session_id)
    if filters.status is not None:
        statement = statement.where(Generation.status == filters.status.value)
    if filters.type is not None:
        statement = statement.where(Generation.type == filters.type.value)
    if filters.provider is not None:
        statement = statement.where(Generation.provider == filters.provider)
    if filters.model is not None:
        statement = statement.where(Generation.model == filters.model)
    if filters.created_after is not None:
        statement = statement.where(Generation.created_at > filters.created_after)
    if filters.created_before is not None:
        statement = statement.where(Generation.created_at < filters.created_before)
    return keyset_page(db, statement, Generation.created_at, Generation.id, limit, cursor)


def prompt_history(
    db: Session, owner_id: uuid.UUID, q: str | None, limit: int, cursor: str | None
) -> tuple[list[PromptHistoryItem], str | None]:
    """The user's distinct prompts, most recently used first, with how often each was used.

    Retries are not counted (the user did not write the prompt again); questions (replies) are not prompts."""
    offset = decode_offset(cursor)
    last_used = func.max(Generation.created_at).label("last_used_at")
    statement = (
        select(Generation.prompt, func.count().label("count"), last_used)
        .where(
            Generation.owner_id == owner_id,
            Generation.prompt != "",
            Generation.retried_from_id.is_(None),
            # A reply's prompt is a question to the language model, not an image prompt.
            Generation.type.not_in([kind.value for kind in LANGUAGE_TYPES]),
        )
        .group_by(Generation.prompt)
        .order_by(last_used.desc(), Generation.prompt)
        .offset(offset)
        .limit(limit + 1)
    )
    if q:
        statement = statement.where(Generation.prompt.ilike(like_pattern(q), escape="\\"))
    rows = db.execute(statement).all()
    items = [PromptHistoryItem(prompt=row.prompt, count=row.count, last_used_at=row.last_used_at) for row in rows]
    if len(items) <= limit:
        return items, None
    return items[:limit], encode_offset(offset + limit)
