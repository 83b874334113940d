"""Accounts by email: invitations, password reset and email verification.

Each flow issues a single-use token (see tokens.py) and queues a mail in the same transaction; the
mail sender delivers it later. Without SMTP nothing is queued: an invitation's link is answered to
the administrator, and an administrator can make a reset link for a user (`admin_reset_link`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from imagestudio.accounts import security, service, tokens
from imagestudio.accounts.service import Principal
from imagestudio.config import Settings
from imagestudio.kit import counters
from imagestudio.kit.errors import ApiError, Conflict, Invalid, NotFound, TooMany
from imagestudio.mail import outbox
from imagestudio.models import AccountToken, TokenPurpose, User

log = logging.getLogger(__name__)

_RESET_THROTTLED = "Too many password reset requests; try again later."


@dataclass(frozen=True)
class Sent:
    """What became of a link: queued as mail, or (without SMTP) handed back to show to an administrator."""

    token: AccountToken
    link: str | None
    mail_queued: bool


def _checked_email(email: str) -> str:
    email = service.normalize_email(email)
    if problem := service.email_problem(email):
        raise Invalid("email", f"Email {problem}.")
    return email


def _checked_password(password: str) -> None:
    if problem := security.password_problem(password):
        raise Invalid("password", f"Password {problem}.")


def _has_account(db: Session, email: str, except_user: uuid.UUID | None = None) -> bool:
    statement = select(User.id).where(User.email == email)
    if except_user is not None:
        statement = statement.where(User.id != except_user)
    return db.scalar(statement) is not None


def _lifetime(settings: Settings, purpose: TokenPurpose) -> timedelta:
    if purpose is TokenPurpose.invitation:
        return timedelta(days=settings.invitation_days)
    if purpose is TokenPurpose.password_reset:
        return timedelta(minutes=settings.password_reset_minutes)
    return timedelta(hours=settings.email_verification_hours)


def _new_link(
    db: Session,
    settings: Settings,
    purpose: TokenPurpose,
    *,
    email: str,
    now: datetime,
    user_id: uuid.UUID | None = None,
    created_by_id: uuid.UUID | None = None,
) -> tuple[AccountToken, str]:
    """A fresh link; the earlier unused links of this purpose (for this account, or else this address) stop working."""
    if user_id is not None:
        tokens.revoke_outstanding(db, purpose, now, user_id=user_id)
    else:
        tokens.revoke_outstanding(db, purpose, now, email=email)
    row, token = tokens.issue(
        db,
        purpose,
        email=email,
        lifetime=_lifetime(settings, purpose),
        now=now,
        user_id=user_id,
        created_by_id=created_by_id,
    )
    return row, tokens.link(settings, purpose, token)


# --- invitations --------------------------------------------------------------------------------


def invite(db: Session, settings: Settings, admin: User, *, email: str, now: datetime) -> Sent:
    """Invite an address: an earlier pending invitation of it is withdrawn, so only the newest link works."""
    email = _checked_email(email)
    if _has_account(db, email):
        raise service.email_taken()
    row, link = _new_link(db, settings, TokenPurpose.invitation, email=email, now=now, created_by_id=admin.id)
    if not settings.mail_configured:
        return Sent(row, link, mail_queued=False)
    inviter = admin.display_name or admin.email
    outbox.enqueue(
        db, settings, to_address=email, kind="invitation", link=link, inviter=inviter, expires_at=row.expires_at
    )
    return Sent(row, None, mail_queued=True)


def invitations_query() -> Select:
    return select(AccountToken).where(AccountToken.purpose == TokenPurpose.invitation.value)


def revoke_invitation(db: Session, invitation_id: uuid.UUID, now: datetime) -> AccountToken:
    row = db.scalar(invitations_query().where(AccountToken.id == invitation_id))
    if row is None:
        raise NotFound("invitation")
    if row.used_at is not None:
        raise Conflict("invitation_accepted", "This invitation has been accepted; disable the account instead.")
    if row.revoked_at is None:
        row.revoked_at = now
        db.flush()
    return row


def accept_invitation(
    db: Session, settings: Settings, *, token: str, password: str, display_name: str, now: datetime
) -> User:
    """Create the invited account (its address is proven by the link) and spend the link."""
    _checked_password(password)
    row = tokens.spend(db, TokenPurpose.invitation, token, now)
    return service.create_user(
        db, settings, email=row.email, password=password, display_name=display_name, email_verified=True
    )


# --- password reset -----------------------------------------------------------------------------


def _count_request(db: Session, settings: Settings, bucket: str, limit: int, now: datetime, detail: str) -> None:
    """Count a request that sends mail; 429 past `limit` in the window (so nobody can flood an inbox).
    A refused request is not counted: the counter moves only within its limit."""
    seconds = settings.password_reset_window_seconds
    if counters.add(db, bucket, now, seconds, limit=limit) is None:
        raise TooMany("too_many_requests", detail, counters.seconds_left(now, seconds))


def request_password_reset(db: Session, settings: Settings, *, email: str, client: str, now: datetime) -> None:
    """Queue a reset link for the account of `email`, if there is one.

    The caller learns nothing either way, and both ways do the same work: a token is made and
    stored, and one mail is rendered and queued (to an unknown address it says there is no account).
    """
    email = _checked_email(email)
    for bucket, limit in (
        (counters.bucket_name("reset:address", email), settings.password_reset_max_per_address),
        (counters.bucket_name("reset:client", client), settings.password_reset_max_per_client),
    ):
        _count_request(db, settings, bucket, limit, now, _RESET_THROTTLED)
    user = db.scalar(select(User).where(User.email == email))
    # Withdrawn by address, not account, so that both ways run the same statements.
    tokens.revoke_outstanding(db, TokenPurpose.password_reset, now, email=email)
    row, token = tokens.issue(
        db,
        TokenPurpose.password_reset,
        email=email,
        lifetime=_lifetime(settings, TokenPurpose.password_reset),
        now=now,
        user_id=user.id if user is not None else None,
    )
    link = tokens.link(settings, TokenPurpose.password_reset, token)
    if not settings.mail_configured:
        log.warning("a password reset was asked for without SMTP configured: an administrator can make a link")
        return
    kind = "password_reset" if user is not None else "password_reset_unknown"
    outbox.enqueue(db, settings, to_address=email, kind=kind, link=link, email=email, expires_at=row.expires_at)


def admin_reset_link(db: Session, settings: Settings, admin: User, user_id: uuid.UUID, now: datetime) -> Sent:
    """A reset link for an administrator to hand over (the way without SMTP); earlier links are withdrawn."""
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("user")
    row, link = _new_link(
        db, settings, TokenPurpose.password_reset, email=user.email, now=now, user_id=user.id, created_by_id=admin.id
    )
    return Sent(row, link, mail_queued=False)


def confirm_password_reset(db: Session, settings: Settings, *, token: str, password: str, now: datetime) -> User:
    """Set the new password; every login of the account ends and its other reset links are withdrawn."""
    _checked_password(password)
    row = tokens.spend(db, TokenPurpose.password_reset, token, now)
    user = db.get(User, row.user_id) if row.user_id is not None else None
    if user is None:
        # Made for an address without an account; its link was never sent.
        raise tokens.invalid_link()
    if not user.is_active:
        raise ApiError(403, "account_disabled", "This account is disabled.")
    user.password_hash = security.hash_password(settings, password)
    user.password_changed_at = now
    if user.email_verified_at is None and user.email == row.email:
        user.email_verified_at = now  # the link reached this address
    service.end_other_logins(db, user.id, keep=None)
    tokens.revoke_outstanding(db, TokenPurpose.password_reset, now, user_id=user.id)
    db.flush()
    return user


# --- email verification -------------------------------------------------------------------------


def send_verification(db: Session, settings: Settings, user: User, *, email: str, now: datetime) -> Sent:
    """Queue a confirmation link for `email` (the account's address, or the one it is changing to)."""
    row, link = _new_link(db, settings, TokenPurpose.email_verification, email=email, now=now, user_id=user.id)
    if not settings.mail_configured:
        log.warning("an address needs confirming, but no SMTP server is configured to send the link")
        return Sent(row, None, mail_queued=False)
    outbox.enqueue(
        db, settings, to_address=email, kind="email_verification", link=link, email=email, expires_at=row.expires_at
    )
    return Sent(row, None, mail_queued=True)


def _require_mail(settings: Settings) -> None:
    if not settings.mail_configured:
        detail = "This studio sends no mail, so an address cannot be confirmed; ask an administrator."
        raise Conflict("mail_unavailable", detail)


def _count_verification(db: Session, settings: Settings, user_id: uuid.UUID, now: datetime) -> None:
    bucket = counters.bucket_name("verify:user", str(user_id))
    detail = "Too many confirmation mails; try again later."
    _count_request(db, settings, bucket, settings.password_reset_max_per_address, now, detail)


def resend_verification(db: Session, settings: Settings, user_id: uuid.UUID, now: datetime) -> Sent:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("user")
    if user.email_verified_at is not None:
        raise Conflict("already_verified", "This address is already confirmed.")
    _require_mail(settings)
    _count_verification(db, settings, user.id, now)
    return send_verification(db, settings, user, email=user.email, now=now)


def request_email_change(
    db: Session, settings: Settings, principal: Principal, *, email: str, password: str, address: str, now: datetime
) -> Sent:
    """Send a confirmation link to the new address; the account's address changes only when it is used."""
    new_email = _checked_email(email)
    _require_mail(settings)
    user = service.confirm_password(db, settings, principal, password=password, address=address, field_name="password")
    if new_email == user.email:
        raise Invalid("email", "This is already your address.")
    if _has_account(db, new_email):
        raise service.email_taken()
    _count_verification(db, settings, user.id, now)
    return send_verification(db, settings, user, email=new_email, now=now)


def verify_email(db: Session, *, token: str, now: datetime) -> tuple[User, str | None]:
    """Confirm the address the link was sent to; for an email change, the account takes that address.
    Answers the user and, when the address changed, the one it had before."""
    row = tokens.spend(db, TokenPurpose.email_verification, token, now)
    user = db.get(User, row.user_id) if row.user_id is not None else None
    if user is None:
        raise tokens.invalid_link()
    previous = user.email if row.email != user.email else None
    if previous is not None:
        if _has_account(db, row.email, except_user=user.id):
            raise Conflict("email_taken", "Another account has taken this address meanwhile.")
        user.email = row.email
    user.email_verified_at = now
    db.flush()
    return user, previous
