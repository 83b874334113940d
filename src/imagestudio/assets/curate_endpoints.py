"""The gallery and curating: /api/v1/assets (every image you made, filtered), /assets/archive (a zip
of a selection), and starring or deleting one image. Thin: the work is in curate.py."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from imagestudio.accounts.deps import CurrentUser, DbSession
from imagestudio.assets import curate
from imagestudio.assets.schemas import AssetOut, AssetUpdate, GalleryItem
from imagestudio.assets.service import asset_out
from imagestudio.container import ContainerDep
from imagestudio.kit.errors import ApiError, FieldError
from imagestudio.kit.openapi import DateTimeQuery
from imagestudio.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page
from imagestudio.models import limits

router = APIRouter(prefix="/assets", tags=["assets"])

_ZIP = {200: {"content": {"application/zip": {}}, "description": "A zip of the images, named for what they are."}}


@router.get("", response_model=Page[GalleryItem])
def list_images(
    db: DbSession,
    user: CurrentUser,
    q: Annotated[str | None, Query(max_length=200, description="Only images whose prompt contains this.")] = None,
    provider: Annotated[str | None, Query(max_length=limits.PROVIDER_NAME_MAX_LENGTH)] = None,
    model: Annotated[str | None, Query(max_length=limits.MODEL_ID_MAX_LENGTH)] = None,
    seed: Annotated[int | None, Query(ge=limits.SEED_MIN, le=limits.SEED_MAX)] = None,
    width: Annotated[int | None, Query(ge=1, le=limits.SIDE_MAX * 4)] = None,
    height: Annotated[int | None, Query(ge=1, le=limits.SIDE_MAX * 4)] = None,
    created_after: DateTimeQuery | None = None,
    created_before: DateTimeQuery | None = None,
    starred: bool | None = None,
    session_id: uuid.UUID | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[GalleryItem]:
    """Every image you generated, across sessions, newest first, with what made it. Uploads are not listed."""
    filters = curate.GalleryFilters(
        q=q.strip() or None if q else None,
        provider=provider,
        model=model,
        seed=seed,
        width=width,
        height=height,
        created_after=created_after,
        created_before=created_before,
        starred=starred,
        session_id=session_id,
    )
    items, next_cursor = curate.gallery_page(db, user.id, filters, limit, cursor)
    return Page(items=items, next_cursor=next_cursor)


@router.get("/archive", response_class=StreamingResponse, responses=_ZIP)
def download_archive(
    db: DbSession,
    user: CurrentUser,
    container: ContainerDep,
    ids: Annotated[list[uuid.UUID], Query(description="The images, in order (repeat the parameter).")],
) -> StreamingResponse:
    """A zip of the chosen images, each named like a single download ("harbour-step-3-2.png"), sent as
    it is written."""
    if not 1 <= len(ids) <= limits.ARCHIVE_IMAGES_MAX:
        problem = [FieldError("query.ids", f"Choose 1 to {limits.ARCHIVE_IMAGES_MAX} images.")]
        raise ApiError(422, "validation_failed", "The request has invalid fields.", problem)
    items, keys = curate.selected_assets(db, user.id, ids)
    headers = {
        "Content-Disposition": 'attachment; filename="imagestudio-images.zip"',
        "Cache-Control": "no-store",
    }
    return StreamingResponse(
        curate.stream_zip(container.storage, items, keys), media_type="application/zip", headers=headers
    )


@router.patch("/{asset_id}", response_model=AssetOut)
def update_asset(asset_id: uuid.UUID, body: AssetUpdate, db: DbSession, user: CurrentUser) -> AssetOut:
    """Star or unstar an image."""
    return asset_out(curate.set_starred(db, user.id, asset_id, body.starred))


@router.delete("/{asset_id}", status_code=204, response_class=Response)
def delete_asset(asset_id: uuid.UUID, db: DbSession, user: CurrentUser, container: ContainerDep) -> Response:
    """Delete one image and its files. Its session's image count and cover follow; the step that made
    it stays with its other images. 409 `asset_in_use` while an unfinished generation reads it."""
    curate.delete_asset(db, container.storage, user.id, asset_id)
    return Response(status_code=204)
