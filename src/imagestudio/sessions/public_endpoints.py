"""/api/v1/public/projects/{token}: a published project, read-only, for anyone holding its link."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from imagestudio.accounts.deps import DbSession
from imagestudio.assets.endpoints import serve_asset
from imagestudio.container import ContainerDep
from imagestudio.sessions import public
from imagestudio.uicode.preview import PREVIEW_HEADERS

router = APIRouter(prefix="/public/projects", tags=["public"])

# A visitor's browser asks again each time (a cheap 304 while shared), so a revoked link shows
# nothing more, even from its cache.
_REVALIDATE = "no-cache"

# secrets.token_urlsafe(32): 43 characters of the URL-safe alphabet.
Token = Annotated[str, Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get("/{token}", response_model=public.PublicProject)
def get_public_project(token: Token, db: DbSession, response: Response) -> public.PublicProject:
    """The published project: its sessions with their prompts and images. No account needed; the
    link is the credential, and it stops working when the owner revokes it."""
    response.headers["Cache-Control"] = "no-store"
    return public.public_view(db, token)


@router.get("/{token}/assets/{asset_id}/content", response_class=Response)
def get_public_image(
    token: Token, asset_id: uuid.UUID, request: Request, db: DbSession, container: ContainerDep
) -> Response:
    """An image of the published project (outputs of its sessions only)."""
    response = serve_asset(request, container, public.public_image(db, token, asset_id), thumbnail=False)
    response.headers["Cache-Control"] = _REVALIDATE
    return response


@router.get("/{token}/assets/{asset_id}/thumbnail", response_class=Response)
def get_public_thumbnail(
    token: Token, asset_id: uuid.UUID, request: Request, db: DbSession, container: ContainerDep
) -> Response:
    """A small WebP of an image of the published project."""
    asset = public.public_image(db, token, asset_id)
    response = serve_asset(request, container, asset, thumbnail=True)
    response.headers["Cache-Control"] = _REVALIDATE
    return response


@router.get(
    "/{token}/ui-generations/{ui_id}/preview",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "The document, sandboxed."}},
)
def get_public_ui_preview(token: Token, ui_id: uuid.UUID, db: DbSession, container: ContainerDep) -> Response:
    """A UI generation of the published project, as its sandboxed preview: served with
    `Content-Security-Policy: sandbox allow-scripts` and no network access, like the private preview.
    The link is checked on every request, so a revoked link stops serving it at once."""
    code = public.public_ui_code(db, container.storage, token, ui_id)
    return Response(code, media_type="text/html; charset=utf-8", headers=PREVIEW_HEADERS)
