"""Single-use links sent by mail: random tokens of which only a SHA-256 hash is stored.

A token has a purpose (a reset link cannot accept an invitation) and an expiry; it is spent with one
conditional UPDATE, so of two requests racing with the same link exactly one succeeds.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imagestudio.accounts import security
from imagestudio.config import Settings
from imagestudio.kit.errors import ApiError
from imagestudio.models import AccountToken, TokenPurpose

# The page each kind of link opens; the token travels in the fragment, which browsers never send to
# a server (so it stays out of access logs and Referer headers).
LINK_PATHS = {
    TokenPurpose.invitation: "/accept-invitation",
    TokenPurpose.password_reset: "/reset-password",
    TokenPurpose.email_verification: "/verify-email",
}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def link(settings: Settings, purpose: TokenPurpose, token: str) -> str:
    return f"{settings.resolved_public_url}{LINK_PATHS[purpose]}#token={token}"


def issue(
    db: Session,
    purpose: TokenPurpose,
    *,
    email: str,
    lifetime: timedelta,
    now: datetime,
    user_id: uuid.UUID | None = None,
    created_by_id: uuid.UUID | None = None,
) -> tuple[AccountToken, str]:
    """A new token row and the token itself, which goes into a link and is never stored."""
    token = new_token()
    row = AccountToken(
        purpose=purpose.value,
        token_hash=security.hash_token(token),
        email=email,
        user_id=user_id,
        created_by_id=created_by_id,
        created_at=now,
        expires_at=now + lifetime,
    )
    db.add(row)
    db.flush()
    return row, token


def invalid_link() -> ApiError:
    # 404: no link of ours has this token (or not for this purpose).
    return ApiError(404, "invalid_token", "This link is not valid. Check that it was copied whole.")


def spend(db: Session, purpose: TokenPurpose, token: str, now: datetime) -> AccountToken:
    """The token's row, marked used; 400 for an unknown token, 410 for a used, revoked or expired one."""
    row = db.scalar(
        select(AccountToken).where(
            AccountToken.token_hash == security.hash_token(token), AccountToken.purpose == purpose.value
        )
    )
    if row is None:
        raise invalid_link()
    if row.used_at is not None:
        raise ApiError(410, "token_used", "This link has already been used; each link works once.")
    if row.revoked_at is not None:
        raise ApiError(410, "token_revoked", "This link has been withdrawn.")
    if now >= row.expires_at:
        raise ApiError(410, "token_expired", "This link has expired; ask for a new one.")
    spent = db.execute(
        update(AccountToken)
        .where(AccountToken.id == row.id, AccountToken.used_at.is_(None), AccountToken.revoked_at.is_(None))
        .values(used_at=now)
    )
    if spent.rowcount != 1:
        raise ApiError(410, "token_used", "This link has already been used; each link works once.")
    db.refresh(row)
    return row


def revoke_outstanding(
    db: Session, purpose: TokenPurpose, now: datetime, *, user_id: uuid.UUID | None = None, email: str | None = None
) -> None:
    """Withdraw the unused links of one purpose for a user (or, for invitations, an address)."""
    statement = update(AccountToken).where(
        AccountToken.purpose == purpose.value, AccountToken.used_at.is_(None), AccountToken.revoked_at.is_(None)
    )
    if user_id is not None:
        statement = statement.where(AccountToken.user_id == user_id)
    if email is not None:
        statement = statement.where(AccountToken.email == email)
    db.execute(statement.values(revoked_at=now))
