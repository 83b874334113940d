"""Secrets: password hashing (argon2id), login tokens, API keys and the login cookie."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from starlette.responses import Response

from imagestudio.config import Settings

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 1024

API_KEY_PREFIX = "isk_"
API_KEY_PREFIX_RANDOM_LENGTH = 8
_PREFIX_ALPHABET = string.ascii_letters + string.digits
_API_KEY_PATTERN = re.compile(r"^(isk_[A-Za-z0-9]{8})_([A-Za-z0-9_-]{40,64})$")

SESSION_COOKIE = "imagestudio_session"
# Over HTTPS the __Host- prefix makes the browser refuse the cookie unless it is Secure, has
# Path=/ and no Domain, so a sibling subdomain cannot plant one.
SECURE_SESSION_COOKIE = "__Host-imagestudio_session"


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None when it is acceptable."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"must be at least {PASSWORD_MIN_LENGTH} characters"
    if len(password) > PASSWORD_MAX_LENGTH:
        return f"must be at most {PASSWORD_MAX_LENGTH} characters"
    return None


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


def password_hasher(settings: Settings) -> PasswordHasher:
    return _hasher(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)


def hash_password(settings: Settings, password: str) -> str:
    return password_hasher(settings).hash(password)


def verify_password(settings: Settings, password_hash: str, password: str) -> tuple[bool, bool]:
    """(matches, needs_rehash): rehash when the stored hash was made with other parameters."""
    hasher = password_hasher(settings)
    try:
        hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, False
    return True, hasher.check_needs_rehash(password_hash)


@lru_cache(maxsize=8)
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash(secrets.token_urlsafe(16))


def burn_password_check(settings: Settings, password: str) -> None:
    """Spend the time of a real verification, so an unknown account answers as slowly as a wrong password."""
    dummy = _dummy_hash(settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism)
    verify_password(settings, dummy, password)


def hash_token(token: str) -> str:
    """Tokens and keys carry >= 128 random bits, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def new_api_key() -> tuple[str, str]:
    """(full key, prefix). The prefix is the lookup key and safe to show; the rest is the secret."""
    prefix = API_KEY_PREFIX + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(API_KEY_PREFIX_RANDOM_LENGTH))
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def api_key_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, or None for anything else."""
    match = _API_KEY_PATTERN.match(key)
    return match.group(1) if match else None


def session_cookie_name(secure: bool) -> str:
    return SECURE_SESSION_COOKIE if secure else SESSION_COOKIE


def set_session_cookie(response: Response, token: str, *, secure: bool, max_age: int) -> None:
    response.set_cookie(
        session_cookie_name(secure),
        token,
        max_age=max_age,
        path="/",
        secure=secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(session_cookie_name(secure), path="/", secure=secure, httponly=True, samesite="lax")
