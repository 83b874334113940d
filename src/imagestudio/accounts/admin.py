"""Administration of users: list, create, and change flags and limits."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imagestudio.accounts import audit, schemas, service
from imagestudio.accounts.deps import AdminUser, DbSession
from imagestudio.container import SettingsDep
from imagestudio.kit.errors import ApiError, not_found
from imagestudio.kit.http import client_address
from imagestudio.kit.money import parse_amount
from imagestudio.kit.openapi import DateTimeQuery
from imagestudio.kit.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, PageParams, keyset_page
from imagestudio.models import User

router = APIRouter(prefix="/admin", tags=["admin"])


def update_user(db: Session, user_id: uuid.UUID, changes: Mapping[str, Any]) -> User:
    """Apply an admin's changes; a disabled user's logins end; the last active admin stays one."""
    user = db.get(User, user_id)
    if user is None:
        raise not_found("user")
    loses_admin = (
        user.is_admin and user.is_active and (changes.get("is_admin") is False or changes.get("is_active") is False)
    )
    if loses_admin:
        others = db.scalar(
            select(func.count())
            .select_from(User)
            .where(User.is_admin.is_(True), User.is_active.is_(True), User.id != user.id)
        )
        if not others:
            raise ApiError(409, "last_admin", "This is the last active administrator; make another one first.")
    for name, value in changes.items():
        setattr(user, name, value)
    if changes.get("is_active") is False:
        service.end_other_logins(db, user.id, keep=None)
    db.flush()
    return user


@router.get("/users", response_model=Page[schemas.UserOut])
def list_users(db: DbSession, _admin: AdminUser, page: PageParams) -> Page[schemas.UserOut]:
    rows, next_cursor = keyset_page(db, select(User), User.created_at, User.id, page.limit, page.cursor)
    return Page(items=[schemas.UserOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post("/users", status_code=201, response_model=schemas.UserOut)
def create_user(
    body: schemas.AdminUserCreate, request: Request, db: DbSession, settings: SettingsDep, admin: AdminUser
) -> User:
    """Create an account whatever the sign-up mode."""
    user = service.create_user(
        db, settings, email=body.email, password=body.password, display_name=body.display_name, is_admin=body.is_admin
    )
    audit.record(
        db,
        "user.created",
        actor=admin,
        target_type="user",
        target_id=user.id,
        address=client_address(request, settings),
        details={"email": user.email, "is_admin": user.is_admin},
    )
    return user


@router.patch("/users/{user_id}", response_model=schemas.UserOut)
def patch_user(
    user_id: uuid.UUID,
    body: schemas.AdminUserUpdate,
    request: Request,
    db: DbSession,
    settings: SettingsDep,
    admin: AdminUser,
) -> User:
    changes = body.model_dump(exclude_unset=True)
    if "monthly_budget" in changes:
        changes["monthly_budget"] = parse_amount(changes["monthly_budget"])
    user = update_user(db, user_id, changes)
    audit.record(
        db,
        "user.updated",
        actor=admin,
        target_type="user",
        target_id=user.id,
        address=client_address(request, settings),
        details={"email": user.email, "changes": _jsonable(changes)},
    )
    return user


def _jsonable(changes: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: value if isinstance(value, str | int | float | bool) or value is None else str(value)
        for name, value in changes.items()
    }


@router.get("/audit", response_model=Page[schemas.AuditEventOut])
def list_audit(
    db: DbSession,
    _admin: AdminUser,
    action: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z_]+(\.[a-z_]+)?$")] = None,
    actor_id: uuid.UUID | None = None,
    since: DateTimeQuery | None = None,
    until: DateTimeQuery | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[schemas.AuditEventOut]:
    """The audit trail, newest first; `action` is one action (`auth.login`) or a family (`auth`)."""
    rows, next_cursor = audit.list_events(
        db, action=action, actor_id=actor_id, since=since, until=until, limit=limit, cursor=cursor
    )
    return Page(items=[schemas.AuditEventOut.model_validate(row) for row in rows], next_cursor=next_cursor)
