"""Setup, sign-up, login and logout; the signed-in user, their settings and their API keys."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from sqlalchemy.orm import Session

from imagestudio.accounts import audit, by_email, schemas, security, service
from imagestudio.accounts.deps import (
    CsrfProtected,
    CurrentPrincipal,
    CurrentUser,
    DbSession,
    LoginPrincipal,
    OptionalPrincipal,
)
from imagestudio.config import Settings
from imagestudio.container import ContainerDep, SettingsDep
from imagestudio.kit.errors import not_found
from imagestudio.kit.http import client_address, is_secure
from imagestudio.kit.pagination import Page, PageParams
from imagestudio.models import User
from imagestudio.models.types import utcnow

router = APIRouter()


def begin_login(db: Session, settings: Settings, request: Request, response: Response, user: User) -> None:
    """Start a login for user and hand its token to the browser in the cookie."""
    token = service.start_login(
        db,
        settings,
        user,
        address=client_address(request, settings),
        user_agent=request.headers.get("user-agent"),
        now=utcnow(),
    )
    security.set_session_cookie(
        response, token, secure=is_secure(request, settings), max_age=settings.session_max_seconds
    )


# --- auth ----------------------------------------------------------------------------------


@router.get("/auth/setup", response_model=schemas.SetupStatus, tags=["auth"])
def setup_status(db: DbSession, settings: SettingsDep) -> schemas.SetupStatus:
    """Whether this install still needs its first administrator, and whether anyone may sign up."""
    required = service.setup_required(db)
    return schemas.SetupStatus(setup_required=required, signup_open=settings.signup_mode == "open" and not required)


@router.post(
    "/auth/setup", status_code=201, response_model=schemas.UserOut, dependencies=[CsrfProtected], tags=["auth"]
)
def setup(body: schemas.NewAccount, request: Request, response: Response, db: DbSession, settings: SettingsDep) -> User:
    """Create the first administrator of a fresh install and sign them in. Answers 409 afterwards."""
    user = service.create_first_admin(
        db, settings, email=body.email, password=body.password, display_name=body.display_name
    )
    audit.record(db, "auth.setup", actor=user, address=client_address(request, settings))
    begin_login(db, settings, request, response, user)
    return user


@router.post(
    "/auth/signup", status_code=201, response_model=schemas.UserOut, dependencies=[CsrfProtected], tags=["auth"]
)
def signup(
    body: schemas.NewAccount, request: Request, response: Response, db: DbSession, settings: SettingsDep
) -> User:
    """Create an account and sign in, when sign-up is open (IMAGESTUDIO_SIGNUP_MODE=open)."""
    user = service.sign_up(db, settings, email=body.email, password=body.password, display_name=body.display_name)
    audit.record(db, "auth.signup", actor=user, address=client_address(request, settings))
    if settings.mail_configured:
        by_email.send_verification(db, settings, user, email=user.email, now=utcnow())
    begin_login(db, settings, request, response, user)
    return user


@router.post("/auth/login", response_model=schemas.UserOut, dependencies=[CsrfProtected], tags=["auth"])
def login(
    body: schemas.LoginRequest,
    request: Request,
    response: Response,
    db: DbSession,
    settings: SettingsDep,
    previous: OptionalPrincipal,
) -> User:
    """Sign in with email and password; sets the login cookie (a new token every time)."""
    user, token = service.log_in(
        db,
        settings,
        email=body.email,
        password=body.password,
        address=client_address(request, settings),
        user_agent=request.headers.get("user-agent"),
    )
    if previous is not None and previous.auth_session_id is not None:
        service.end_login(db, previous.auth_session_id)
    audit.record(db, "auth.login", actor=user, address=client_address(request, settings))
    security.set_session_cookie(
        response, token, secure=is_secure(request, settings), max_age=settings.session_max_seconds
    )
    return user


@router.post("/auth/logout", status_code=204, response_class=Response, tags=["auth"])
def logout(request: Request, db: DbSession, settings: SettingsDep, principal: OptionalPrincipal) -> Response:
    """End this login and clear its cookie. Harmless when not signed in."""
    if principal is not None and principal.auth_session_id is not None:
        service.end_login(db, principal.auth_session_id)
        audit.record(db, "auth.logout", actor=principal.user, address=client_address(request, settings))
    response = Response(status_code=204)
    security.clear_session_cookie(response, secure=is_secure(request, settings))
    return response


# --- the signed-in user ----------------------------------------------------------------------


@router.get("/me", response_model=schemas.UserOut, tags=["me"])
def me(user: CurrentUser) -> User:
    return user


@router.patch("/me", response_model=schemas.UserOut, tags=["me"])
def update_me(body: schemas.MeUpdate, db: DbSession, user: CurrentUser) -> User:
    row = db.get(User, user.id)
    if row is None:
        raise not_found("user")
    row.display_name = body.display_name.strip()
    db.flush()
    return row


@router.post("/me/password", status_code=204, response_class=Response, tags=["me"])
def change_password(
    body: schemas.PasswordChange, request: Request, db: DbSession, container: ContainerDep, principal: LoginPrincipal
) -> Response:
    """Change the password; every other login of this account ends (this one stays)."""
    settings = container.settings
    service.change_password(
        db,
        settings,
        principal,
        current_password=body.current_password,
        new_password=body.new_password,
        address=client_address(request, settings),
    )
    audit.record(db, "auth.password_changed", actor=principal.user, address=client_address(request, settings))
    return Response(status_code=204)


@router.get("/me/settings", response_model=schemas.SettingsOut, tags=["me"])
def get_settings(db: DbSession, user: CurrentUser) -> object:
    return service.get_user_settings(db, user.id)


@router.patch("/me/settings", response_model=schemas.SettingsOut, tags=["me"])
def update_settings(body: schemas.SettingsUpdate, db: DbSession, user: CurrentUser) -> object:
    changes = body.model_dump(exclude_unset=True)
    if body.default_params is not None:
        changes["default_params"] = body.default_params.model_dump(exclude_none=True)
    for name in ("default_params", "notifications"):
        if name in changes and changes[name] is None:
            changes[name] = {}  # null clears them: these settings are objects, never null
    return service.update_user_settings(db, user.id, changes)


# --- API keys ------------------------------------------------------------------------------


@router.get("/api-keys", response_model=Page[schemas.ApiKeyOut], tags=["api-keys"])
def list_api_keys(
    db: DbSession, principal: CurrentPrincipal, page: PageParams, container: ContainerDep
) -> Page[schemas.ApiKeyOut]:
    """This account's keys, newest first, revoked ones included (they show revoked_at). Uses made through
    another process may take up to IMAGESTUDIO_API_KEY_USAGE_FLUSH_SECONDS to be counted here."""
    # This process's uncounted uses first, so a key's count includes the request just made with it.
    service.flush_api_key_uses(container.db, container.api_key_uses)
    rows, next_cursor = service.list_api_keys(db, principal.user_id, page.limit, page.cursor)
    return Page(items=[schemas.ApiKeyOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post("/api-keys", status_code=201, response_model=schemas.ApiKeyCreated, tags=["api-keys"])
def create_api_key(
    body: schemas.ApiKeyCreate, request: Request, db: DbSession, settings: SettingsDep, principal: LoginPrincipal
) -> schemas.ApiKeyCreated:
    """Create a key. The full key is in this answer only; afterwards only its prefix is shown."""
    api_key, full_key = service.create_api_key(
        db,
        principal,
        name=body.name.strip() or body.name,
        scopes=list(body.scopes),
        expires_at=body.expires_at,
        rate_limit_per_minute=body.rate_limit_per_minute,
    )
    audit.record(
        db,
        "api_key.created",
        actor=principal.user,
        target_type="api_key",
        target_id=api_key.id,
        address=client_address(request, settings),
        details={"name": api_key.name, "prefix": api_key.prefix, "scopes": list(api_key.scopes)},
    )
    out = schemas.ApiKeyOut.model_validate(api_key)
    return schemas.ApiKeyCreated(**out.model_dump(), key=full_key)


@router.delete("/api-keys/{key_id}", status_code=204, response_class=Response, tags=["api-keys"])
def revoke_api_key(
    key_id: uuid.UUID, request: Request, db: DbSession, settings: SettingsDep, principal: LoginPrincipal
) -> Response:
    """Revoke a key: it stops working at once and stays listed with its revoked_at."""
    service.revoke_api_key(db, principal.user_id, key_id)
    audit.record(
        db,
        "api_key.revoked",
        actor=principal.user,
        target_type="api_key",
        target_id=key_id,
        address=client_address(request, settings),
    )
    return Response(status_code=204)
