"""/api/v1/generations and /api/v1/prompts. Thin: the work is in submit.py, queries.py and the engine."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Response
from sqlalchemy.orm import Session

from imagestudio.accounts.deps import CurrentUser, DbSession, RequireVerifiedEmail
from imagestudio.config import Settings
from imagestudio.container import ContainerDep
from imagestudio.generations import queries, service, submit
from imagestudio.generations.schemas import GenerationCreate, GenerationOut, PromptHistoryItem
from imagestudio.generations.submit import engine_errors
from imagestudio.generations.views import generation_out, generations_out, one_generation_out
from imagestudio.kit.errors import ApiError, FieldError
from imagestudio.kit.openapi import DateTimeQuery
from imagestudio.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from imagestudio.models import Generation, GenerationType, RunStatus, User, limits
from imagestudio.models.limits import IDEMPOTENCY_KEY_MAX_LENGTH
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.storage.base import ObjectNotFound
from imagestudio.storage.keys import preview_key

router = APIRouter(tags=["generations"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        description="Send the same key again to get the same generation back instead of a second one.",
        # Stated for clients: printable ASCII, no space at either end (HTTP would strip it).
        json_schema_extra={"pattern": "^[!-~]([ -~]{0,198}[!-~])?$"},
    ),
]
_REPLAYED = {200: {"model": GenerationOut, "description": "A replay of an earlier request with this Idempotency-Key."}}


# Both ways of making a generation answer 201 with the new one, or 200 with an earlier request's.
_CREATES: dict[str, Any] = {
    "status_code": 201,
    "response_model": GenerationOut,
    "responses": _REPLAYED,
    "dependencies": [RequireVerifiedEmail],
}


@dataclass(frozen=True)
class _Submitter:
    """What making a generation takes besides the request: the caller, the engine's parts, the key."""

    db: Session
    user: User
    registry: ProviderRegistry
    settings: Settings
    idempotency_key: str | None

    def submit(self, action: Callable[..., tuple[Generation, bool]], **request: Any) -> tuple[Generation, bool]:
        """`submit.create` or `submit.retry` for this caller: (the generation, whether it is a replay)."""
        return action(
            self.db,
            user=self.user,
            registry=self.registry,
            settings=self.settings,
            idempotency_key=self.idempotency_key,
            **request,
        )

    def answer(self, response: Response, outcome: tuple[Generation, bool]) -> GenerationOut:
        generation, replay = outcome
        if replay:
            response.status_code = 200
        return one_generation_out(self.db, generation)


def _submitter(
    db: DbSession, user: CurrentUser, container: ContainerDep, idempotency_key: IdempotencyKey = None
) -> _Submitter:
    return _Submitter(db, user, container.registry, container.settings, idempotency_key)


Submitter = Annotated[_Submitter, Depends(_submitter)]


@router.post("/generations", **_CREATES)
def post_generation(body: GenerationCreate, response: Response, by: Submitter) -> GenerationOut:
    """Queue a generation. Fields left out come from your settings, then from the provider's defaults."""
    outcome = by.submit(submit.create, body=body)
    generation, replay = outcome
    if not replay and not (body.source_asset_id or body.mask_asset_id or body.reference_asset_ids):
        # Just queued and naming no input: it has neither inputs nor outputs to look up.
        return generation_out(generation, inputs=[], outputs=[])
    return by.answer(response, outcome)


@router.get("/generations", response_model=Page[GenerationOut])
def list_generations(
    db: DbSession,
    user: CurrentUser,
    session_id: uuid.UUID | None = None,
    status: RunStatus | None = None,
    type: GenerationType | None = None,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    model: Annotated[str | None, Query(max_length=200)] = None,
    created_after: DateTimeQuery | None = None,
    created_before: DateTimeQuery | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[GenerationOut]:
    """Your generations, newest first, filtered by any of the parameters."""
    filters = queries.GenerationFilters(
        session_id=session_id,
        status=status,
        type=type,
        provider=provider,
        model=model,
        created_after=_in_utc(created_after, "created_after"),
        created_before=_in_utc(created_before, "created_before"),
    )
    rows, next_cursor = queries.list_generations(db, user.id, filters, limit, cursor)
    return Page(items=generations_out(db, rows), next_cursor=next_cursor)


def _in_utc(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return value.astimezone(UTC)
    except OverflowError:
        problem = [FieldError(f"query.{field}", "Out of the range of dates this studio stores.")]
        raise ApiError(422, "validation_failed", "The request has invalid fields.", problem) from None


@router.get("/generations/{generation_id}", response_model=GenerationOut)
def get_generation(generation_id: uuid.UUID, db: DbSession, user: CurrentUser) -> GenerationOut:
    with engine_errors():
        generation = service.get_generation(db, generation_id, user.id)
    return one_generation_out(db, generation)


@router.get(
    "/generations/{generation_id}/previews/{number}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The picture."}},
)
def get_preview(
    generation_id: uuid.UUID,
    number: Annotated[int, Path(ge=0, le=limits.PREVIEW_NUMBER_MAX)],
    db: DbSession,
    user: CurrentUser,
    container: ContainerDep,
) -> Response:
    """An intermediate picture of the generation's current attempt, as announced by a progress event
    (`payload.preview.index`). Previews are kept a while after the generation ends, then removed."""
    with engine_errors():
        generation = service.get_generation(db, generation_id, user.id)
    try:
        data = container.storage.get(preview_key(generation.id, generation.attempt, number))
    except ObjectNotFound:
        raise ApiError(404, "not_found", "This generation has no such preview.") from None
    # The same address shows another attempt's picture after a retry: always ask again.
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, no-cache"})


@router.post("/generations/{generation_id}/cancel", response_model=GenerationOut)
def cancel_generation(generation_id: uuid.UUID, db: DbSession, user: CurrentUser) -> GenerationOut:
    """Cancel: a queued generation at once, a running one at its next step (its status says when).
    A finished generation is answered unchanged."""
    with engine_errors():
        generation = service.request_cancel(db, generation_id=generation_id, owner_id=user.id)
    return one_generation_out(db, generation)


@router.post("/generations/{generation_id}/retry", **_CREATES)
def retry_generation(generation_id: uuid.UUID, response: Response, by: Submitter) -> GenerationOut:
    """Run a failed or canceled generation again as a new one (retried_from_id points back); 409 otherwise."""
    return by.answer(response, by.submit(submit.retry, generation_id=generation_id))


@router.delete("/generations/{generation_id}", status_code=204, response_class=Response)
def delete_generation(generation_id: uuid.UUID, db: DbSession, user: CurrentUser, container: ContainerDep) -> Response:
    """Delete a finished generation (succeeded, failed or canceled), its chat turn and every file it stored;
    409 while it is queued or running. Generations made from it stay, as the start of their own line."""
    with engine_errors():
        service.delete_generation(db, generation_id=generation_id, owner_id=user.id, storage=container.storage)
    return Response(status_code=204)


@router.get("/prompts", response_model=Page[PromptHistoryItem], tags=["prompts"])
def list_prompts(
    db: DbSession,
    user: CurrentUser,
    q: Annotated[str | None, Query(max_length=200, description="Only prompts containing this text.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[PromptHistoryItem]:
    """Your distinct prompts, most recently used first, with how often and when you last used each."""
    items, next_cursor = queries.prompt_history(db, user.id, q.strip() if q else None, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)
