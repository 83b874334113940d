"""What the OpenAI-compatible API does beyond parsing: model ids, the API's session, waiting for a
generation to finish, and turning its outputs into OpenAI's answer.

Model ids are `provider/model` (e.g. `openai/gpt-image-1`, `builtin/procedural`), a provider's bare
name for its default model (`builtin`), or a model id that exactly one ready provider offers
(`gpt-image-1`), so scripts written for OpenAI keep working.
"""

from __future__ import annotations

import asyncio
import base64
import io
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from imagestudio.container import Container
from imagestudio.kit.errors import ApiError, FieldError
from imagestudio.models import (
    FINAL_STATUSES,
    Asset,
    ChatSession,
    EventType,
    Generation,
    GenerationEvent,
    ProviderRecord,
)
from imagestudio.models.types import utcnow

API_SESSION_TITLE = "OpenAI-compatible API"
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class ModelChoice:
    provider: str
    model: str | None


@dataclass(frozen=True)
class ListedModel:
    id: str
    provider: str
    created: int


def _ready_providers(db: Session) -> list[ProviderRecord]:
    rows = db.scalars(select(ProviderRecord).order_by(ProviderRecord.name)).all()
    return [row for row in rows if row.enabled and row.configured]


def _image_models(row: ProviderRecord) -> list[str]:
    return [str(model["id"]) for model in row.models if isinstance(model, dict) and model.get("id")]


def list_models(db: Session) -> list[ListedModel]:
    """Every model a ready provider offers: its bare name first, then `provider/model` for each model."""
    listed: list[ListedModel] = []
    for row in _ready_providers(db):
        created = int(row.updated_at.timestamp())
        listed.append(ListedModel(id=row.name, provider=row.name, created=created))
        listed.extend(
            ListedModel(id=f"{row.name}/{model}", provider=row.name, created=created) for model in _image_models(row)
        )
    return listed


def model_not_found(model_id: str) -> ApiError:
    return ApiError(
        404,
        "model_not_found",
        f"The model `{model_id}` does not exist or you do not have access to it.",
        [FieldError("model", "Unknown model; GET /v1/models lists them.")],
    )


def resolve_model(db: Session, model_id: str | None) -> ModelChoice | None:
    """The provider and model a request names; None for the server's (or the user's) default."""
    if model_id is None:
        return None
    rows = {row.name: row for row in _ready_providers(db)}
    provider, slash, model = model_id.partition("/")
    if slash:
        row = rows.get(provider)
        if row is not None and model in _image_models(row):
            return ModelChoice(provider=provider, model=model)
        raise model_not_found(model_id)
    if model_id in rows:
        return ModelChoice(provider=model_id, model=None)
    offering = [name for name, row in rows.items() if model_id in _image_models(row)]
    if len(offering) == 1:
        return ModelChoice(provider=offering[0], model=model_id)
    raise model_not_found(model_id)


def parse_size(size: str | None) -> tuple[int | None, int | None]:
    if size is None or size == "auto":
        return None, None
    width, _, height = size.partition("x")
    return int(width), int(height)


def api_session(db: Session, owner_id: uuid.UUID) -> uuid.UUID:
    """The session where the API's generations appear in the studio, made on first use."""
    existing = db.scalar(
        select(ChatSession.id)
        .where(ChatSession.owner_id == owner_id, ChatSession.title == API_SESSION_TITLE, ChatSession.title_is_custom)
        .order_by(ChatSession.created_at)
        .limit(1)
    )
    if existing is not None:
        return existing
    now = utcnow()
    session = ChatSession(
        owner_id=owner_id, title=API_SESSION_TITLE, title_is_custom=True, created_at=now, updated_at=now
    )
    db.add(session)
    db.flush()
    return session.id


# ---- waiting --------------------------------------------------------------------------------------


def _status(container: Container, owner_id: uuid.UUID, generation_id: uuid.UUID) -> str | None:
    with container.db.reading() as db:
        return db.scalar(
            select(Generation.status).where(Generation.id == generation_id, Generation.owner_id == owner_id)
        )


async def watch(
    container: Container,
    owner_id: uuid.UUID,
    generation_id: uuid.UUID,
    wait_seconds: float,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[str | None]:
    """The generation's status each time something may have happened to it, ending with its final
    status, or with None when `wait_seconds` passed or the client went away first.

    Woken by the notification hub; reads the row again at least every second in case a notification
    was lost."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    poll = min(container.settings.sse_poll_seconds, 1.0)
    async with container.hub.subscribe_events(generation_id=generation_id, owner_id=owner_id) as notices:
        while True:
            status = await run_in_threadpool(_status, container, owner_id, generation_id)
            yield status
            if status in FINAL_STATUSES:
                return
            remaining = deadline - loop.time()
            if remaining <= 0 or await disconnected():
                yield None
                return
            await notices.get(min(poll, remaining))


async def wait_final(
    container: Container,
    owner_id: uuid.UUID,
    generation_id: uuid.UUID,
    wait_seconds: float,
    disconnected: Callable[[], Awaitable[bool]],
) -> str | None:
    """The generation's final status, or None when `wait_seconds` passed or the client went away."""
    status: str | None = None
    async for seen in watch(container, owner_id, generation_id, wait_seconds, disconnected):
        status = seen
    return status


@dataclass(frozen=True)
class Preview:
    sequence: int
    key: str
    number: int


def previews_after(container: Container, generation_id: uuid.UUID, after_sequence: int) -> list[Preview]:
    """Intermediate pictures the worker announced since `after_sequence` (progress events that carry one)."""
    with container.db.reading() as db:
        rows = db.execute(
            select(GenerationEvent.sequence, GenerationEvent.payload)
            .where(
                GenerationEvent.generation_id == generation_id,
                GenerationEvent.type == EventType.progress.value,
                GenerationEvent.sequence > after_sequence,
            )
            .order_by(GenerationEvent.sequence)
        ).all()
    found = []
    for sequence, payload in rows:
        preview = (payload or {}).get("preview")
        if isinstance(preview, dict) and isinstance(preview.get("key"), str):
            found.append(Preview(sequence=sequence, key=preview["key"], number=int(preview.get("index", 0))))
    return found


# ---- answers --------------------------------------------------------------------------------------


def outputs_of(db: Session, generation_id: uuid.UUID) -> list[Asset]:
    return list(
        db.scalars(
            select(Asset)
            .where(Asset.generation_id == generation_id, Asset.deleted_at.is_(None))
            .order_by(Asset.batch_index)
        ).all()
    )


def encode_as(data: bytes, mime_type: str, output_format: str | None, compression: int | None) -> bytes:
    """The stored image in the format the client asked for (the stored bytes when they already are)."""
    if output_format is None or _MIME[output_format] == mime_type:
        return data
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        out = io.BytesIO()
        if output_format == "png":
            image.save(out, format="PNG")
        else:
            # JPEG has no alpha; WebP keeps it.
            converted = image.convert("RGB") if output_format == "jpeg" else image
            quality = 100 if compression is None else max(1, compression)
            converted.save(out, format=output_format.upper(), quality=quality)
        return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def failure_error(generation: Generation) -> ApiError:
    """What a client of the OpenAI API hears about a generation that did not succeed."""
    message = generation.error_message or "The generation did not succeed."
    code = generation.error_code or "generation_failed"
    if generation.status == "canceled":
        return ApiError(409, "generation_canceled", f"The generation {generation.id} was canceled.")
    if code == "content_rejected" or code.startswith("content"):
        return ApiError(400, "content_policy_violation", message)
    return ApiError(502, code, f"The generation {generation.id} failed: {message}")
