"""Captions: text describing an asset, written by a language model as a job in the generations queue.

A caption request creates a `captions` row and a generation of type `caption` whose only input is
the asset (role init). The generation is the job: it is claimed, leased, renewed, reaped, cancelled
and streamed exactly like an image generation, so a caption survives restarts and shows its status
on /api/v1/generations/{id}/events. When it succeeds, the text and the tokens it cost are written to
the captions row in the same fenced transaction that marks the job succeeded.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imagestudio.assets.service import get_owned_asset
from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations import fenced
from imagestudio.generations.enqueue import (
    LanguageJob,
    add_language_job,
    announce_queued,
    language_model,
    language_provider,
)
from imagestudio.generations.fenced import Outcome
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.kit.pagination import keyset_page
from imagestudio.language import ChatResult, LanguageRegistry
from imagestudio.models import Caption, CaptionStyle, Generation, RunStatus

CAPTIONS = Caption.__table__


@dataclass(frozen=True)
class CaptionView:
    caption: Caption
    status: str
    error_code: str | None
    error_message: str | None
    mime_type: str


def request_caption(
    db: Session,
    *,
    owner_id: uuid.UUID,
    asset_id: uuid.UUID,
    style: CaptionStyle,
    provider: str | None,
    model: str | None,
    language: LanguageRegistry,
    settings: Settings,
) -> CaptionView:
    """Queue a caption of an asset the owner has. 404 for an asset that is not theirs; 422 naming the
    field for a language provider that is unknown or not configured."""
    asset = get_owned_asset(db, owner_id, asset_id)
    name = language_provider(language, provider)
    chosen_model = language_model(language, name, model, vision=True)

    job = LanguageJob(
        owner_id=owner_id,
        type="caption",
        provider=name,
        model=chosen_model,
        prompt="",
        width=asset.width,
        height=asset.height,
        params={"style": style.value},
    )
    generation = add_language_job(db, job, settings=settings, source=asset)
    caption = Caption(
        asset_id=asset.id,
        owner_id=owner_id,
        generation_id=generation.id,
        style=style.value,
        provider=name,
        model=chosen_model,
        created_at=generation.created_at,
    )
    db.add(caption)
    db.flush()
    announce_queued(db, generation, caption_id=str(caption.id))
    return CaptionView(caption, generation.status, None, None, asset.mime_type)


def list_captions(
    db: Session, *, owner_id: uuid.UUID, asset_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[CaptionView], str | None]:
    """The asset's captions, newest first, each with the status of its job."""
    asset = get_owned_asset(db, owner_id, asset_id)
    statement = select(Caption).where(Caption.asset_id == asset_id, Caption.owner_id == owner_id)
    captions, next_cursor = keyset_page(db, statement, Caption.created_at, Caption.id, limit, cursor)
    jobs = _jobs(db, [caption.generation_id for caption in captions if caption.generation_id is not None])
    views = []
    for caption in captions:
        status, code, message = jobs.get(caption.generation_id, (RunStatus.succeeded.value, None, None))
        views.append(CaptionView(caption, status, code, message, asset.mime_type))
    return views, next_cursor


def _jobs(db: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID | None, tuple[str, str | None, str | None]]:
    if not ids:
        return {}
    rows = db.execute(
        select(Generation.id, Generation.status, Generation.error_code, Generation.error_message).where(
            Generation.id.in_(ids)
        )
    ).all()
    return {row.id: (row.status, row.error_code, row.error_message) for row in rows}


def finish_caption(db: Database, claimed: ClaimedGeneration, result: ChatResult) -> Outcome:
    """Record the caption's text and usage and the job's success in one fenced transaction."""
    usage = {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens}

    def write_caption(session: Session) -> None:
        session.execute(
            update(CAPTIONS)
            .where(CAPTIONS.c.generation_id == claimed.id)
            .values(
                text=result.text,
                provider=result.provider,
                model=result.model,
                by_ai=result.by_ai,
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
            )
        )

    return fenced.finish_language_job(
        db, claimed, served_by=result.provider, model=result.model, usage=usage, also=write_caption
    )
