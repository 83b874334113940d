"""Links signed under the studio's secret key: an HMAC-SHA256 of what the link names and when it expires,
under a key derived for one purpose, so that a signature made for one kind of link opens no other."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from imagestudio.config import Settings
from imagestudio.kit.errors import ApiError


@dataclass(frozen=True)
class SignedLink:
    url: str
    expires_at: datetime


def link_signature(settings: Settings, purpose: bytes, subject: uuid.UUID, expires: int) -> str:
    key = hmac.new(settings.get_secret_key().encode(), purpose, hashlib.sha256).digest()
    digest = hmac.new(key, f"{subject}:{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def check_signature(settings: Settings, purpose: bytes, subject: uuid.UUID, expires: int, signature: str) -> None:
    """Raise unless the signature is this studio's for this purpose, subject and expiry, and it has not expired."""
    expected = link_signature(settings, purpose, subject, expires)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise ApiError(403, "invalid_link", "This link is not valid: it was altered or the studio's key changed.")
    if expires < time.time():
        raise ApiError(410, "link_expired", "This link has expired; ask for a new one.")
