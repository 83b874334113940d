"""Signed links: absolute URLs to an asset's bytes that need no cookie or key until they expire.

A link is `/api/v1/assets/{id}/signed?expires=<unix seconds>&signature=<HMAC-SHA256>` where the
HMAC covers the asset id and the expiry under the studio's secret key, so a link cannot be moved to
another asset or extended, and changing `IMAGESTUDIO_SECRET_KEY` revokes every link at once.
On S3 storage with `IMAGESTUDIO_SIGNED_LINKS=storage`, links are the store's own presigned URLs
instead, so the bytes never pass through the studio.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from starlette.requests import Request

from imagestudio.config import Settings
from imagestudio.kit.http import request_origin
from imagestudio.kit.links import SignedLink, check_signature, link_signature
from imagestudio.models import Asset
from imagestudio.storage.base import Storage

MIN_LINK_SECONDS = 60
MAX_LINK_SECONDS = 7 * 24 * 3600
_PURPOSE = b"imagestudio asset link v1"


def link_path(settings: Settings, asset_id: uuid.UUID, expires: int) -> str:
    signature = link_signature(settings, _PURPOSE, asset_id, expires)
    return f"/api/v1/assets/{asset_id}/signed?expires={expires}&signature={signature}"


def sign_link(
    request: Request, settings: Settings, storage: Storage, asset: Asset, lifetime_seconds: int
) -> SignedLink:
    """A link to `asset`'s bytes valid for lifetime_seconds, absolute for the origin the request came to."""
    expires = int(time.time()) + lifetime_seconds
    expires_at = datetime.fromtimestamp(expires, UTC)
    if settings.signed_links == "storage":
        presigned = storage.url(asset.storage_key, expires_in=lifetime_seconds)
        if presigned is not None:
            return SignedLink(url=presigned, expires_at=expires_at)
    origin = request_origin(request, settings)
    return SignedLink(url=origin + link_path(settings, asset.id, expires), expires_at=expires_at)


def check_link(settings: Settings, asset_id: uuid.UUID, expires: int, signature: str) -> None:
    """Raise unless the signature is this studio's for this asset and expiry, and it has not expired."""
    check_signature(settings, _PURPOSE, asset_id, expires, signature)
