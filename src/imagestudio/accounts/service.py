"""Accounts: users, logins (auth sessions), API keys, user settings, and who a request is.

Functions take the session they work in and only flush; the request (or the CLI command)
commits. The exceptions are said where they happen: a failed login must be counted even though
the request fails, and authentication runs in short transactions of its own before the request's.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import case, delete, func, literal, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from imagestudio.accounts import audit, security
from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.kit import counters
from imagestudio.kit.errors import ApiError, FieldError, TooMany, not_found
from imagestudio.kit.pagination import keyset_page
from imagestudio.kit.pending import PendingUse, PendingUses
from imagestudio.models import ApiKey, AuthSession, User, UserSettings
from imagestudio.models.types import UTCDateTime, utcnow

SCOPE_READ = "read"
SCOPE_GENERATE = "generate"
SCOPE_ADMIN = "admin"
SCOPES = (SCOPE_READ, SCOPE_GENERATE, SCOPE_ADMIN)
# Each scope includes the ones below it: admin > generate > read.
_IMPLIED_SCOPES = {
    SCOPE_READ: {SCOPE_READ},
    SCOPE_GENERATE: {SCOPE_READ, SCOPE_GENERATE},
    SCOPE_ADMIN: {SCOPE_READ, SCOPE_GENERATE, SCOPE_ADMIN},
}

# last_seen_at (and the idle deadline it extends) is written at most this often per login.
LAST_SEEN_RESOLUTION = timedelta(minutes=1)
API_KEY_RATE_WINDOW_SECONDS = 60
EMAIL_MAX_LENGTH = 320
# No spaces or control characters; the same rule is stated in the OpenAPI document (schemas.Email).
EMAIL_PATTERN = r"^[^@\x00-\x20]+@[^@\x00-\x20]+\.[^@\x00-\x20]+$"
_EMAIL_PATTERN = re.compile(EMAIL_PATTERN)
# Key for the PostgreSQL advisory lock that serialises first-admin setup.
_SETUP_LOCK_KEY = 0x1A5E7C0


def expand_scopes(scopes: Iterable[str]) -> frozenset[str]:
    granted: set[str] = set()
    for scope in scopes:
        granted |= _IMPLIED_SCOPES.get(scope, set())
    return frozenset(granted)


@dataclass(frozen=True)
class Principal:
    """Who is making a request, and with what.

    `user` is a snapshot loaded before the request's own transaction; to change the user row,
    load it in that transaction (`db.get(User, principal.user.id)`).
    """

    user: User
    via: Literal["session", "api_key"]
    scopes: frozenset[str]
    auth_session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    @property
    def user_id(self) -> uuid.UUID:
        return self.user.id

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def _user_scopes(user: User) -> frozenset[str]:
    return expand_scopes([SCOPE_ADMIN if user.is_admin else SCOPE_GENERATE])


# --- users ---------------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    return email.strip().lower()


def email_problem(email: str) -> str | None:
    if len(email) > EMAIL_MAX_LENGTH:
        return f"must be at most {EMAIL_MAX_LENGTH} characters"
    if not _EMAIL_PATTERN.match(email):
        return "is not an email address"
    return None


def create_user(
    db: Session,
    settings: Settings,
    *,
    email: str,
    password: str,
    display_name: str = "",
    is_admin: bool = False,
    email_verified: bool = True,
) -> User:
    """A new account. Accounts an administrator makes (or invites) count as verified; open sign-up's do not."""
    email = normalize_email(email)
    problems = []
    if problem := email_problem(email):
        problems.append(FieldError("email", f"Email {problem}."))
    if problem := security.password_problem(password):
        problems.append(FieldError("password", f"Password {problem}."))
    if problems:
        raise ApiError(422, "validation_failed", "The request has invalid fields.", fields=problems)
    if db.scalar(select(User.id).where(User.email == email)) is not None:
        raise email_taken()
    password_hash = security.hash_password(settings, password)
    now = utcnow()
    user = User(
        email=email,
        display_name=display_name.strip(),
        password_hash=password_hash,
        is_admin=is_admin,
        password_changed_at=now,
        email_verified_at=now if email_verified else None,
        created_at=now,
        updated_at=now,
    )
    # A concurrent signup with the same email loses here; the savepoint keeps the transaction usable.
    try:
        with db.begin_nested():
            db.add(user)
            db.flush()
    except IntegrityError:
        raise email_taken() from None
    return user


def email_taken() -> ApiError:
    return ApiError(409, "email_taken", "An account with this email already exists.", [FieldError("email", "Taken.")])


def setup_required(db: Session) -> bool:
    return db.scalar(select(func.count()).select_from(User)) == 0


def create_first_admin(db: Session, settings: Settings, *, email: str, password: str, display_name: str = "") -> User:
    """The first account of a fresh install, made an admin. Refused once any account exists."""
    if db.get_bind().dialect.name == "postgresql":
        # Two setups racing on an empty table would both see it empty; SQLite's BEGIN IMMEDIATE
        # already serialises them.
        db.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SETUP_LOCK_KEY})
    if not setup_required(db):
        raise ApiError(409, "setup_done", "This studio is already set up; sign in instead.")
    return create_user(db, settings, email=email, password=password, display_name=display_name, is_admin=True)


def sign_up(db: Session, settings: Settings, *, email: str, password: str, display_name: str = "") -> User:
    if settings.signup_mode != "open":
        raise ApiError(403, "signup_disabled", "Sign-up is closed; ask an administrator for an account.")
    if setup_required(db):
        raise ApiError(409, "setup_required", "This studio has no administrator yet; set it up first.")
    return create_user(
        db, settings, email=email, password=password, display_name=display_name, email_verified=False
    )


def _login_windows(settings: Settings) -> tuple[counters.Window, counters.Window]:
    seconds = settings.login_window_seconds
    return (
        counters.Window(seconds, settings.login_max_failures_per_account),
        counters.Window(seconds, settings.login_max_failures_per_address),
    )


_INVALID_CREDENTIALS = "Wrong email or password."
_THROTTLED = "Too many failed sign-in attempts; try again later."


def _ensure_below(db: Session, bucket: str, window: counters.Window, now: datetime) -> None:
    if counters.count(db, bucket, now, window.seconds) >= window.limit:
        raise TooMany("too_many_attempts", _THROTTLED, counters.seconds_left(now, window.seconds))


def check_credentials(
    db: Session, settings: Settings, *, email: str, password: str, address: str, now: datetime | None = None
) -> User:
    """The user whose password this is, or 401 (the same answer for unknown and wrong), or 429.

    Failures count per account *and client address* (a few guesses at one account from one place)
    and per address (many guesses from one place at any accounts), never per account alone: a
    stranger guessing from elsewhere cannot lock the owner out. A failure is committed before
    raising: it must count even though the request fails.
    """
    now = now or utcnow()
    email = normalize_email(email)
    pair_window, address_window = _login_windows(settings)
    pair_bucket = counters.bucket_name("login:account-address", email, address)
    address_bucket = counters.bucket_name("login:address", address)
    _ensure_below(db, pair_bucket, pair_window, now)
    _ensure_below(db, address_bucket, address_window, now)

    user = db.scalar(select(User).where(User.email == email))
    if user is None or user.password_hash is None:
        security.burn_password_check(settings, password)
        matches, needs_rehash = False, False
    else:
        matches, needs_rehash = security.verify_password(settings, user.password_hash, password)
    if not matches:
        counters.add(db, pair_bucket, now, pair_window.seconds)
        counters.add(db, address_bucket, now, address_window.seconds)
        audit.record(
            db,
            "auth.login_failed",
            actor_email=email,
            target_type="user",
            target_id=user.id if user else None,
            address=address,
        )
        db.commit()
        raise ApiError(401, "invalid_credentials", _INVALID_CREDENTIALS)
    assert user is not None
    if needs_rehash:
        user.password_hash = security.hash_password(settings, password)
    return user


def log_in(
    db: Session, settings: Settings, *, email: str, password: str, address: str, user_agent: str | None
) -> tuple[User, str]:
    now = utcnow()
    user = check_credentials(db, settings, email=email, password=password, address=address, now=now)
    if not user.is_active:
        raise ApiError(403, "account_disabled", "This account is disabled.")
    token = start_login(db, settings, user, address=address, user_agent=user_agent, now=now)
    return user, token


def start_login(
    db: Session, settings: Settings, user: User, *, address: str | None, user_agent: str | None, now: datetime
) -> str:
    """A new auth session with a fresh token; only its hash is stored. Answers the token."""
    token = security.new_session_token()
    user.last_login_at = now
    expires_at = now + timedelta(seconds=settings.session_max_seconds)
    db.add(
        AuthSession(
            user_id=user.id,
            token_hash=security.hash_token(token),
            created_at=now,
            last_seen_at=now,
            idle_expires_at=min(now + timedelta(seconds=settings.session_idle_seconds), expires_at),
            expires_at=expires_at,
            ip_address=address[:64] if address else None,
            user_agent=user_agent[:400] if user_agent else None,
        )
    )
    db.flush()
    return token


def end_login(db: Session, auth_session_id: uuid.UUID) -> None:
    db.execute(delete(AuthSession).where(AuthSession.id == auth_session_id))


def end_other_logins(db: Session, user_id: uuid.UUID, keep: uuid.UUID | None) -> None:
    statement = delete(AuthSession).where(AuthSession.user_id == user_id)
    if keep is not None:
        statement = statement.where(AuthSession.id != keep)
    db.execute(statement)


def confirm_password(
    db: Session,
    settings: Settings,
    principal: Principal,
    *,
    password: str,
    address: str,
    field_name: str = "current_password",
) -> User:
    """The signed-in user's row, once they have typed their current password (throttled like a login)."""
    user = db.get(User, principal.user_id)
    if user is None:
        raise not_found("user")
    try:
        check_credentials(db, settings, email=user.email, password=password, address=address)
    except ApiError as error:
        if error.code != "invalid_credentials":
            raise
        wrong = [FieldError(field_name, "Wrong.")]
        raise ApiError(400, "wrong_password", "The current password is wrong.", wrong) from None
    return user


def change_password(
    db: Session, settings: Settings, principal: Principal, *, current_password: str, new_password: str, address: str
) -> None:
    """Check the current password (throttled like a login), set the new one, end every other login."""
    user = confirm_password(db, settings, principal, password=current_password, address=address)
    if problem := security.password_problem(new_password):
        raise ApiError(
            422, "validation_failed", "The request has invalid fields.", [FieldError("new_password", problem)]
        )
    user.password_hash = security.hash_password(settings, new_password)
    user.password_changed_at = utcnow()
    end_other_logins(db, user.id, keep=principal.auth_session_id)
    db.flush()


# --- who is asking -------------------------------------------------------------------------


def resolve_login_token(
    database: Database, settings: Settings, token: str, now: datetime | None = None
) -> Principal | None:
    """The principal of a login token, or None when it is unknown, expired or its user disabled."""
    now = now or utcnow()
    token_hash = security.hash_token(token)
    with database.reading() as db:
        row = db.execute(
            select(AuthSession, User)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.token_hash == token_hash)
        ).first()
    if row is None:
        return None
    login, user = row
    if now >= login.expires_at or now >= login.idle_expires_at:
        with database.writing() as db:
            end_login(db, login.id)
        return None
    if not user.is_active:
        return None
    if now - login.last_seen_at >= LAST_SEEN_RESOLUTION:
        idle_deadline = min(now + timedelta(seconds=settings.session_idle_seconds), login.expires_at)
        with database.writing() as db:
            # Conditional, so concurrent requests of one login write once.
            db.execute(
                update(AuthSession)
                .where(AuthSession.id == login.id, AuthSession.last_seen_at <= now - LAST_SEEN_RESOLUTION)
                .values(last_seen_at=now, idle_expires_at=idle_deadline)
            )
    return Principal(user=user, via="session", scopes=_user_scopes(user), auth_session_id=login.id)


def _invalid_key(detail: str) -> ApiError:
    return ApiError(401, "invalid_api_key", detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def resolve_api_key(
    database: Database, key: str, now: datetime | None = None, uses: PendingUses | None = None
) -> Principal:
    """The principal of an API key; 401 for a malformed, unknown, revoked or expired key, 429 over its rate.

    The use is counted in `uses` and written with the others when a flush is due (without `uses`, at
    once); a key with a rate limit counts its requests in the database on every request."""
    now = now or utcnow()
    prefix = security.api_key_prefix(key)
    if prefix is None:
        raise _invalid_key("The API key is malformed.")
    with database.reading() as db:
        row = db.execute(
            select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.prefix == prefix)
        ).first()
    if row is None or not security.tokens_match(key, row[0].key_hash):
        raise _invalid_key("The API key is not valid.")
    api_key, user = row
    if api_key.revoked_at is not None:
        raise _invalid_key("The API key has been revoked.")
    if api_key.expires_at is not None and now >= api_key.expires_at:
        raise _invalid_key("The API key has expired.")
    if not user.is_active:
        raise _invalid_key("The account of this API key is disabled.")
    if api_key.rate_limit_per_minute is not None:
        # The request is counted against the limit in the database anyway: its use rides along.
        with database.writing() as db:
            _count_rate(db, api_key.id, api_key.rate_limit_per_minute, now)
            _add_use(db, api_key.id, PendingUse(1, now))
    else:
        uses = PendingUses(0) if uses is None else uses
        if uses.add(api_key.id, now):
            flush_api_key_uses(database, uses)
    scopes = expand_scopes(scope for scope in api_key.scopes if scope != SCOPE_ADMIN or user.is_admin)
    return Principal(user=user, via="api_key", scopes=scopes, api_key_id=api_key.id)


def _count_rate(db: Session, key_id: uuid.UUID, limit: int, now: datetime) -> None:
    used = counters.add(db, f"api_key:{key_id}", now, API_KEY_RATE_WINDOW_SECONDS)
    if used is not None and used > limit:
        raise TooMany(
            "rate_limited",
            "This API key has made too many requests this minute.",
            counters.seconds_left(now, API_KEY_RATE_WINDOW_SECONDS),
        )


def _add_use(db: Session, key_id: uuid.UUID, use: PendingUse) -> None:
    last_at = literal(use.last_at, UTCDateTime())
    later = case(
        (ApiKey.last_used_at.is_(None) | (ApiKey.last_used_at < last_at), last_at),
        else_=ApiKey.last_used_at,
    )
    db.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id)
        .values(usage_count=ApiKey.usage_count + use.count, last_used_at=later)
    )


def flush_api_key_uses(database: Database, uses: PendingUses) -> None:
    """Write the uses counted so far, one UPDATE per key, in one transaction (periodically, at
    shutdown, before keys are listed, and by the request that finds a flush due)."""
    taken = uses.take()
    if not taken:
        return
    try:
        with database.writing() as db:
            for key_id, use in taken.items():
                _add_use(db, key_id, use)
    except BaseException:
        uses.put_back(taken)
        raise


# --- API keys ------------------------------------------------------------------------------


def create_api_key(
    db: Session,
    principal: Principal,
    *,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
    rate_limit_per_minute: int | None,
) -> tuple[ApiKey, str]:
    """A new key; answers the row and the full key, which is shown this once and never stored."""
    if SCOPE_ADMIN in scopes and not principal.user.is_admin:
        raise ApiError(403, "insufficient_scope", "Only administrators may create keys with the admin scope.")
    if expires_at is not None and expires_at <= utcnow():
        raise ApiError(
            422,
            "validation_failed",
            "The request has invalid fields.",
            [FieldError("expires_at", "Must be in the future.")],
        )
    full_key, prefix = security.new_api_key()
    api_key = ApiKey(
        user_id=principal.user_id,
        name=name,
        prefix=prefix,
        key_hash=security.hash_token(full_key),
        scopes=sorted(set(scopes), key=SCOPES.index),
        expires_at=expires_at,
        rate_limit_per_minute=rate_limit_per_minute,
    )
    db.add(api_key)
    db.flush()
    return api_key, full_key


def list_api_keys(
    db: Session, user_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[Sequence[ApiKey], str | None]:
    statement = select(ApiKey).where(ApiKey.user_id == user_id)
    return keyset_page(db, statement, ApiKey.created_at, ApiKey.id, limit, cursor)


def revoke_api_key(db: Session, user_id: uuid.UUID, key_id: uuid.UUID) -> None:
    api_key = db.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id))
    if api_key is None:
        raise not_found("API key")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        db.flush()


# --- user settings -------------------------------------------------------------------------


@dataclass
class SettingsView:
    """A user's settings; the defaults when they never saved any."""

    theme: str = "system"
    language: str = "en"
    timezone: str = "UTC"
    default_provider: str | None = None
    default_model: str | None = None
    default_params: dict = field(default_factory=dict)
    enhance_prompt: bool = False
    notifications: dict = field(default_factory=dict)


def get_user_settings(db: Session, user_id: uuid.UUID) -> UserSettings | SettingsView:
    return db.get(UserSettings, user_id) or SettingsView()


def update_user_settings(db: Session, user_id: uuid.UUID, changes: Mapping[str, Any]) -> UserSettings:
    row = db.get(UserSettings, user_id)
    if row is None:
        defaults = SettingsView()
        row = UserSettings(user_id=user_id, **{name: getattr(defaults, name) for name in defaults.__dataclass_fields__})
        db.add(row)
    for name, value in changes.items():
        setattr(row, name, value)
    db.flush()
    return row
