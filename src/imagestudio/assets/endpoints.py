"""/api/v1/assets: uploads, asset metadata, and the bytes of images and their thumbnails."""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from imagestudio.accounts.deps import CurrentUser, DbSession
from imagestudio.assets import links, service, thumbnails
from imagestudio.assets.schemas import AssetLinkCreate, AssetLinkOut, AssetOut
from imagestudio.assets.upload import UPLOAD_OPENAPI, read_upload
from imagestudio.container import ContainerDep
from imagestudio.kit.errors import ApiError
from imagestudio.models import Asset
from imagestudio.storage.base import ObjectNotFound

router = APIRouter(prefix="/assets", tags=["assets"])

_IMAGE_RESPONSES: dict = {
    200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}, "description": "The image."},
    304: {"description": "Not modified (If-None-Match matched the ETag)."},
}


@router.post(
    "",
    status_code=201,
    response_model=AssetOut,
    openapi_extra=UPLOAD_OPENAPI,
    responses={200: {"model": AssetOut, "description": "The same image was uploaded before: that asset."}},
)
async def upload_asset(
    request: Request, response: Response, db: DbSession, user: CurrentUser, container: ContainerDep
) -> AssetOut:
    """Upload an image (multipart fields `file`, `purpose`, optional `session_id`).

    PNG, JPEG and WebP only, decided from the content; re-encoded without metadata. Answers 201 with
    the new asset, or 200 with the existing one when the same image was uploaded before."""
    settings = container.settings
    upload = await read_upload(request, settings.max_upload_bytes)
    asset, created = await run_in_threadpool(service.store_upload, db, container.storage, settings, user.id, upload)
    response.status_code = 201 if created else 200
    return service.asset_out(asset)


@router.get("/{asset_id}", response_model=AssetOut, response_model_exclude_none=False)
def get_asset(
    asset_id: uuid.UUID,
    db: DbSession,
    user: CurrentUser,
    container: ContainerDep,
    include: Annotated[
        Literal["b64_json"] | None, Query(description="`b64_json` adds the image itself, base64-encoded.")
    ] = None,
) -> AssetOut:
    """The asset's metadata; with `?include=b64_json` also its bytes as base64."""
    asset = service.get_owned_asset(db, user.id, asset_id)
    out = service.asset_out(asset)
    if include == "b64_json":
        try:
            out.b64_json = base64.b64encode(container.storage.get(asset.storage_key)).decode()
        except ObjectNotFound:
            raise ApiError(404, "content_missing", "This image's file is missing from storage.") from None
    return out


@router.post("/{asset_id}/links", status_code=201, response_model=AssetLinkOut)
def create_link(
    asset_id: uuid.UUID,
    request: Request,
    db: DbSession,
    user: CurrentUser,
    container: ContainerDep,
    body: AssetLinkCreate | None = None,
) -> AssetLinkOut:
    """A signed, expiring link to the image that needs no cookie or key (for embedding or sharing).

    Changing the studio's secret key revokes every link."""
    asset = service.get_owned_asset(db, user.id, asset_id)
    lifetime = body.expires_in if body and body.expires_in else container.settings.signed_link_seconds
    link = links.sign_link(request, container.settings, container.storage, asset, lifetime)
    return AssetLinkOut(url=link.url, expires_at=link.expires_at)


@router.get("/{asset_id}/signed", response_class=Response, responses=_IMAGE_RESPONSES)
def get_signed_content(
    asset_id: uuid.UUID,
    request: Request,
    db: DbSession,
    container: ContainerDep,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
) -> Response:
    """The image behind a signed link: no cookie or key, only a valid, unexpired signature."""
    links.check_link(container.settings, asset_id, expires, signature)
    asset = db.get(Asset, asset_id)
    if asset is None or asset.deleted_at is not None:
        raise ApiError(404, "not_found", "No such asset.")
    return serve_asset(request, container, asset, thumbnail=False)


@router.get("/{asset_id}/content", response_class=Response, responses=_IMAGE_RESPONSES)
def get_content(
    asset_id: uuid.UUID,
    request: Request,
    db: DbSession,
    user: CurrentUser,
    container: ContainerDep,
    download: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> Response:
    """The image itself. Honours If-None-Match with its ETag (the SHA-256 of the file). With `download`, it
    is an attachment under that name (made safe, with the image's own extension)."""
    asset = service.get_owned_asset(db, user.id, asset_id)
    return serve_asset(request, container, asset, thumbnail=False, download=download)


@router.get("/{asset_id}/thumbnail", response_class=Response, responses=_IMAGE_RESPONSES)
def get_thumbnail(
    asset_id: uuid.UUID, request: Request, db: DbSession, user: CurrentUser, container: ContainerDep
) -> Response:
    """A WebP at most 256 pixels a side, made by the first request for it and kept."""
    asset = service.get_owned_asset(db, user.id, asset_id)
    return serve_asset(request, container, asset, thumbnail=True)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def serve_asset(
    request: Request, container: ContainerDep, asset: Asset, *, thumbnail: bool, download: str | None = None
) -> Response:
    media_type = "image/webp" if thumbnail else asset.mime_type
    etag = f'"thumb-{asset.sha256}"' if thumbnail else f'"{asset.sha256}"'
    headers = {
        "ETag": etag,
        "Cache-Control": f"private, max-age={container.settings.asset_cache_seconds}, immutable",
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": (
            service.download_disposition(asset, download)
            if download
            else f'inline; filename="{service.safe_filename(asset, thumbnail=thumbnail)}"'
        ),
        # Served images never run anything, even if opened directly.
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    try:
        if thumbnail:
            content = thumbnails.thumbnail_bytes(container.db, container.storage, asset)
            return Response(content, media_type=media_type, headers=headers)
        chunks = container.storage.open(asset.storage_key)
    except ObjectNotFound:
        raise ApiError(404, "content_missing", "This image's file is missing from storage.") from None
    headers["Content-Length"] = str(asset.bytes)
    return StreamingResponse(chunks, media_type=media_type, headers=headers)
