"""Signed links: absolute URLs to an asset's bytes that need no cookie or key until they expire.

A link is `/api/v1/assets/{id}/signed?expires=<unix seconds>&signature=<HMAC-SHA256>` where the
HMAC covers the asset id and the expiry under the studio's secret key, so a link cannot be moved to
another asset or extended, and changing `IMAGESTUDIO_SECRET_KEY` revokes every link at once.
On S3 storage with `IMAGESTUDIO_SIGNED_LINKS=storage`, links are the store's own presigned URLs
instead, so the bytes never pass through the studio.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from starlette.requests import Request

from imagestudio.config import Settings
from imagestudio.kit.errors import ApiError
from imagestudio.kit.http import request_origin
from imagestudio.models import Asset
from imagestudio.storage.base import Storage

MIN_LINK_SECONDS = 60
MAX_LINK_SECONDS = 7 * 24 * 3600
_PURPOSE = b"imagestudio asset link v1"


@dataclass(frozen=True)
class SignedLink:
    url: str
    expires_at: datetime


def _signature(secret: str, asset_id: uuid.UUID, expires: int) -> str:
    key = hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()
    digest = hmac.new(key, f"{asset_id}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def link_path(settings: Settings, asset_id: uuid.UUID, expires: int) -> str:
    signature = _signature(settings.get_secret_key(), asset_id, expires)
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
    expected = _signature(settings.get_secret_key(), asset_id, expires)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise ApiError(403, "invalid_link", "This link is not valid: it was altered or the studio's key changed.")
    if expires < time.time():
        raise ApiError(410, "link_expired", "This link has expired; ask for a new one.")
