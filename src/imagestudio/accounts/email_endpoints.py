"""Invitations, password reset and email verification (see by_email.py for the rules)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from imagestudio.accounts import audit, by_email, schemas
from imagestudio.accounts.deps import AdminUser, CsrfProtected, CurrentUser, DbSession, LoginPrincipal
from imagestudio.accounts.endpoints import begin_login
from imagestudio.config import Settings
from imagestudio.container import SettingsDep
from imagestudio.kit.http import client_address
from imagestudio.kit.pagination import Page, PageParams, keyset_page
from imagestudio.models import AccountToken, User
from imagestudio.models.types import utcnow

router = APIRouter()

_RESET_ANSWER = "If an account uses this address, a link to reset its password is on its way."


def _invitation_out(row: AccountToken, now: datetime) -> schemas.InvitationOut:
    if row.used_at is not None:
        status = "accepted"
    elif row.revoked_at is not None:
        status = "revoked"
    elif now >= row.expires_at:
        status = "expired"
    else:
        status = "pending"
    return schemas.InvitationOut(
        id=row.id,
        email=row.email,
        status=status,
        invited_by_id=row.created_by_id,
        created_at=row.created_at,
        expires_at=row.expires_at,
        accepted_at=row.used_at,
        revoked_at=row.revoked_at,
    )


def _record(
    db: Session,
    request: Request,
    settings: Settings,
    action: str,
    admin: User,
    token: AccountToken,
    **details: object,
) -> None:
    """An administrator's action on a link, in the audit trail (the address it names, never the link)."""
    audit.record(
        db,
        action,
        actor=admin,
        target_type="account_token",
        target_id=token.id,
        address=client_address(request, settings),
        details={"email": token.email, **details},
    )


# --- invitations (administrators) ---------------------------------------------------------------


@router.post("/admin/invitations", status_code=201, response_model=schemas.InvitationCreated, tags=["admin"])
def create_invitation(
    body: schemas.InvitationCreate, request: Request, db: DbSession, settings: SettingsDep, admin: AdminUser
) -> schemas.InvitationCreated:
    """Invite an address. The link is mailed; without SMTP it is in this answer, to hand over yourself."""
    now = utcnow()
    sent = by_email.invite(db, settings, admin, email=body.email, now=now)
    _record(db, request, settings, "invitation.created", admin, sent.token, mailed=sent.mail_queued)
    out = _invitation_out(sent.token, now)
    return schemas.InvitationCreated(**out.model_dump(), link=sent.link, mail_queued=sent.mail_queued)


@router.get("/admin/invitations", response_model=Page[schemas.InvitationOut], tags=["admin"])
def list_invitations(db: DbSession, _admin: AdminUser, page: PageParams) -> Page[schemas.InvitationOut]:
    """Every invitation, newest first, whatever became of it (see `status`)."""
    rows, next_cursor = keyset_page(
        db, by_email.invitations_query(), AccountToken.created_at, AccountToken.id, page.limit, page.cursor
    )
    now = utcnow()
    return Page(items=[_invitation_out(row, now) for row in rows], next_cursor=next_cursor)


@router.delete("/admin/invitations/{invitation_id}", status_code=204, response_class=Response, tags=["admin"])
def revoke_invitation(
    invitation_id: uuid.UUID, request: Request, db: DbSession, settings: SettingsDep, admin: AdminUser
) -> Response:
    """Withdraw an invitation: its link stops working. An accepted one answers 409."""
    row = by_email.revoke_invitation(db, invitation_id, utcnow())
    _record(db, request, settings, "invitation.revoked", admin, row)
    return Response(status_code=204)


@router.post(
    "/admin/users/{user_id}/password-reset", status_code=201, response_model=schemas.ResetLinkOut, tags=["admin"]
)
def make_reset_link(
    user_id: uuid.UUID, request: Request, db: DbSession, settings: SettingsDep, admin: AdminUser
) -> schemas.ResetLinkOut:
    """A password-reset link for a user, to hand over yourself (for studios without SMTP)."""
    sent = by_email.admin_reset_link(db, settings, admin, user_id, utcnow())
    _record(db, request, settings, "user.reset_link_created", admin, sent.token)
    assert sent.link is not None
    return schemas.ResetLinkOut(link=sent.link, expires_at=sent.token.expires_at)


# --- links opened by people ---------------------------------------------------------------------


@router.post(
    "/auth/invitations/accept",
    status_code=201,
    response_model=schemas.UserOut,
    dependencies=[CsrfProtected],
    tags=["auth"],
)
def accept_invitation(
    body: schemas.InvitationAccept, request: Request, response: Response, db: DbSession, settings: SettingsDep
) -> User:
    """Create the invited account with a name and password, and sign in. Each link works once."""
    user = by_email.accept_invitation(
        db, settings, token=body.token, password=body.password, display_name=body.display_name, now=utcnow()
    )
    audit.record(db, "invitation.accepted", actor=user, address=client_address(request, settings))
    begin_login(db, settings, request, response, user)
    return user


@router.post(
    "/auth/password-reset",
    status_code=202,
    response_model=schemas.Accepted,
    dependencies=[CsrfProtected],
    tags=["auth"],
)
def request_password_reset(
    body: schemas.PasswordResetRequest, request: Request, db: DbSession, settings: SettingsDep
) -> schemas.Accepted:
    """Mail a reset link. The answer is the same whether or not the address has an account."""
    client = client_address(request, settings)
    by_email.request_password_reset(db, settings, email=body.email, client=client, now=utcnow())
    return schemas.Accepted(detail=_RESET_ANSWER, mail_queued=settings.mail_configured)


@router.post(
    "/auth/password-reset/confirm", response_model=schemas.UserOut, dependencies=[CsrfProtected], tags=["auth"]
)
def confirm_password_reset(
    body: schemas.PasswordResetConfirm, request: Request, response: Response, db: DbSession, settings: SettingsDep
) -> User:
    """Set a new password with a reset link: every other login of the account ends, and this one begins."""
    user = by_email.confirm_password_reset(db, settings, token=body.token, password=body.password, now=utcnow())
    audit.record(db, "auth.password_reset", actor=user, address=client_address(request, settings))
    begin_login(db, settings, request, response, user)
    return user


@router.post("/auth/verify-email", response_model=schemas.EmailVerified, dependencies=[CsrfProtected], tags=["auth"])
def verify_email(body: schemas.VerifyEmailRequest, request: Request, db: DbSession, settings: SettingsDep) -> User:
    """Confirm an address with the link mailed to it (after sign-up, or to change one's address)."""
    user, previous = by_email.verify_email(db, token=body.token, now=utcnow())
    if previous is not None:
        audit.record(
            db,
            "auth.email_changed",
            actor=user,
            address=client_address(request, settings),
            details={"from": previous, "to": user.email},
        )
    return user


def _confirmation_on_its_way(sent: by_email.Sent) -> schemas.Accepted:
    return schemas.Accepted(
        detail=f"A confirmation link is on its way to {sent.token.email}.", mail_queued=sent.mail_queued
    )


# --- the signed-in user -------------------------------------------------------------------------


@router.post("/me/email", status_code=202, response_model=schemas.Accepted, tags=["me"])
def change_email(
    body: schemas.EmailChange, request: Request, db: DbSession, settings: SettingsDep, principal: LoginPrincipal
) -> schemas.Accepted:
    """Change the account's address: it changes once the link mailed to the new address is opened."""
    sent = by_email.request_email_change(
        db,
        settings,
        principal,
        email=body.email,
        password=body.password,
        address=client_address(request, settings),
        now=utcnow(),
    )
    return _confirmation_on_its_way(sent)


@router.post("/me/email-verification", status_code=202, response_model=schemas.Accepted, tags=["me"])
def resend_verification(db: DbSession, settings: SettingsDep, user: CurrentUser) -> schemas.Accepted:
    """Send the confirmation link for the account's address again (an earlier link stops working)."""
    sent = by_email.resend_verification(db, settings, user.id, utcnow())
    return _confirmation_on_its_way(sent)
