"""Authentication and the request's transaction, as typed dependencies for endpoints.

    def endpoint(db: DbSession, user: CurrentUser) -> ...

- `DbSession`: the request's transaction. GET/HEAD/OPTIONS get a read session; other methods a
  write session (BEGIN IMMEDIATE on SQLite). It commits when the endpoint returns (before the
  response is sent) and rolls back when it raises; services only flush.
- `OptionalPrincipal` / `CurrentPrincipal`: who is asking (user, via session or API key, scopes).
- `CurrentUser` / `AdminUser`: the user (a snapshot; reload it in `db` to change it).
- `LoginPrincipal`: a principal signed in with a login, not an API key (for managing credentials).

A request that changes state with the login cookie must pass the CSRF check (see api.http);
bearer requests are exempt. A read-only key is refused any state-changing method.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from imagestudio.accounts import security
from imagestudio.accounts.service import SCOPE_ADMIN, SCOPE_GENERATE, Principal, resolve_api_key, resolve_login_token
from imagestudio.container import ContainerDep, SettingsDep
from imagestudio.kit.errors import ApiError
from imagestudio.kit.http import check_csrf, is_safe_method, is_secure
from imagestudio.kit.observability import note_user
from imagestudio.models import User


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "invalid_api_key",
            "Authorization must be 'Bearer <API key>'.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_request"'},
        )
    return token.strip()


def _resolve_principal(request: Request, container: ContainerDep) -> Principal | None:
    settings = container.settings
    token = _bearer_token(request)
    if token is not None:
        # A bearer request never falls back to the cookie: a bad key is a 401, not anonymous.
        return resolve_api_key(container.db, token, uses=container.api_key_uses)
    cookie = request.cookies.get(security.session_cookie_name(is_secure(request, settings)))
    if not cookie:
        return None
    check_csrf(request, settings)
    return resolve_login_token(container.db, settings, cookie)


def get_optional_principal(request: Request, container: ContainerDep) -> Principal | None:
    principal = _resolve_principal(request, container)
    if principal is not None:
        note_user(principal.user_id)
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(get_optional_principal)]


async def get_db(request: Request, container: ContainerDep, _principal: OptionalPrincipal) -> AsyncIterator[Session]:
    # Depending on the principal resolves authentication (with its own short transactions) before
    # this session exists, so on SQLite it never waits on the write lock this request may hold.
    # Making a session does no I/O (it connects at its first statement, in the endpoint's thread),
    # so only the end of the transaction takes a thread-pool hop: one per request instead of two.
    if is_safe_method(request.method):
        session = container.db.read()
        try:
            yield session
        finally:
            await _in_thread(_end, session, commit=False)
        return
    session = container.db.write()
    try:
        yield session
    except BaseException:
        await _in_thread(_end, session, commit=False)
        raise
    await _in_thread(_end, session, commit=True)


def _end(session: Session, *, commit: bool) -> None:
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


async def _in_thread(function: Callable[..., None], *args: Any, **kwargs: Any) -> None:
    # Shielded: a request cancelled (its client gone) still ends its transaction and frees its connection.
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(function, *args, **kwargs)


# scope="function": commit before the response goes out, so a client that sees success can rely on it.
DbSession = Annotated[Session, Depends(get_db, scope="function")]


# Checks that only look at the resolved principal are `async def`, so they run on the event loop
# instead of costing a thread-pool hop each (see container.get_container).


def _not_authenticated() -> ApiError:
    return ApiError(401, "not_authenticated", "Sign in or send an API key.", headers={"WWW-Authenticate": "Bearer"})


async def get_current_principal(request: Request, principal: OptionalPrincipal) -> Principal:
    if principal is None:
        raise _not_authenticated()
    if not is_safe_method(request.method) and not principal.allows(SCOPE_GENERATE):
        raise ApiError(403, "insufficient_scope", "This API key may only read.")
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_current_principal)]


async def get_current_user(principal: CurrentPrincipal) -> User:
    return principal.user


async def get_admin_user(principal: CurrentPrincipal) -> User:
    if not principal.user.is_admin:
        raise ApiError(403, "admin_required", "Only administrators may do this.")
    if not principal.allows(SCOPE_ADMIN):
        raise ApiError(403, "insufficient_scope", "This API key lacks the admin scope.")
    return principal.user


async def get_login_principal(principal: CurrentPrincipal) -> Principal:
    if principal.via != "session":
        raise ApiError(403, "login_required", "Sign in to manage credentials; API keys cannot.")
    return principal


CurrentUser = Annotated[User, Depends(get_current_user)]
AdminUser = Annotated[User, Depends(get_admin_user)]
LoginPrincipal = Annotated[Principal, Depends(get_login_principal)]


async def csrf_protected(request: Request, settings: SettingsDep) -> None:
    """For endpoints that set the login cookie without requiring one (setup, signup, login)."""
    if request.headers.get("authorization") is None:
        check_csrf(request, settings)


CsrfProtected = Depends(csrf_protected)


async def require_verified_email(user: CurrentUser, settings: SettingsDep) -> None:
    """Refuses new work to an account that has not confirmed its address, when the studio asks for it."""
    if settings.requires_email_verification and user.email_verified_at is None:
        raise ApiError(
            403,
            "email_unverified",
            f"Confirm your address first: open the link mailed to {user.email} (or ask for a new one).",
        )


RequireVerifiedEmail = Depends(require_verified_email)
