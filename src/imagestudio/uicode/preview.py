"""Previews of generated code: served only through signed links, under a sandboxing policy.

Generated code is untrusted. Its preview is served with `Content-Security-Policy: sandbox
allow-scripts` (never allow-same-origin: the document runs in an opaque origin, so it cannot read
the studio's cookies or storage, nor call its API with the user's rights), nothing may be fetched
(`default-src 'none'`; inline styles and scripts and data: images only), and no cookie is honoured:
the route authenticates by the link's HMAC alone, so the iframe needs none.

A link is `/api/v1/ui-generations/{id}/preview?expires=<unix seconds>&signature=<HMAC-SHA256>`,
signed under the studio's secret key for this purpose only (an asset link's signature does not fit).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from imagestudio.config import Settings
from imagestudio.kit.links import SignedLink, check_signature, link_signature

PREVIEW_LINK_SECONDS = 3600
_PURPOSE = b"imagestudio ui preview v1"

PREVIEW_POLICY = (
    "sandbox allow-scripts; default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
)
PREVIEW_HEADERS = {
    "Content-Security-Policy": PREVIEW_POLICY,
    "X-Content-Type-Options": "nosniff",
    # The studio's pages may frame it (the default for every other response is DENY).
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "private, no-store",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def preview_link(settings: Settings, ui_id: uuid.UUID, lifetime_seconds: int = PREVIEW_LINK_SECONDS) -> SignedLink:
    expires = int(time.time()) + lifetime_seconds
    signature = link_signature(settings, _PURPOSE, ui_id, expires)
    return SignedLink(
        f"/api/v1/ui-generations/{ui_id}/preview?expires={expires}&signature={signature}",
        datetime.fromtimestamp(expires, UTC),
    )


def check_preview_link(settings: Settings, ui_id: uuid.UUID, expires: int, signature: str) -> None:
    """Raise unless the signature is this studio's for this UI generation and expiry, and it has not expired."""
    check_signature(settings, _PURPOSE, ui_id, expires, signature)
