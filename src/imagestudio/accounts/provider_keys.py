"""Each person's own provider keys, and the administrator's policy on them.

A key is sealed (kit/sealing.py) under a key derived from the studio's secret and bound to its
owner and provider, so a sealed value copied to another row does not open. It is opened only by a
worker about to run that owner's generation on that provider (`key_for_run`), and passed to the
adapter with that one request. Nothing answers, logs or exports it; the owner sees "set, ending in
…" and the last four characters.

Policy per hosted provider (`provider_key_policies`): whether users may bring keys (default no),
and whether the studio's key serves users who have none (default yes).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from imagestudio.config import Settings
from imagestudio.kit.errors import ApiError, Invalid
from imagestudio.kit.sealing import SealBroken, Sealer
from imagestudio.models import ProviderKeyPolicy, UserProviderKey
from imagestudio.models.types import utcnow
from imagestudio.providers.base import NotConfiguredError, Provider
from imagestudio.providers.registry import ProviderRegistry

SEAL_PURPOSE = "user provider keys v1"
KEY_MIN_LENGTH = 8
KEY_MAX_LENGTH = 512
HINT_LENGTH = 4


def sealer_for(secret: str) -> Sealer:
    return Sealer(secret, SEAL_PURPOSE)


def studio_sealer(settings: Settings) -> Sealer:
    return sealer_for(settings.get_secret_key())


def _context(user_id: uuid.UUID, provider: str) -> str:
    return f"{user_id}/{provider}"


def takes_user_keys(provider: Provider) -> bool:
    """Whether the provider bills per call with a key a user could bring (the hosted services)."""
    return bool(getattr(provider, "accepts_user_keys", False))


def keyed_providers(registry: ProviderRegistry) -> list[str]:
    return sorted(provider.name for provider in registry if takes_user_keys(provider))


# ---- policy ----


@dataclass(frozen=True)
class Policy:
    provider: str
    allow_user_keys: bool = False
    studio_key_fallback: bool = True


def policies(db: Session, names: Iterable[str]) -> dict[str, Policy]:
    wanted = list(names)
    rows = {
        row.provider: row for row in db.scalars(select(ProviderKeyPolicy).where(ProviderKeyPolicy.provider.in_(wanted)))
    }
    return {
        name: Policy(name, rows[name].allow_user_keys, rows[name].studio_key_fallback) if name in rows else Policy(name)
        for name in wanted
    }


def policy(db: Session, provider: str) -> Policy:
    return policies(db, [provider])[provider]


def set_policy(db: Session, provider: str, *, allow_user_keys: bool | None, studio_key_fallback: bool | None) -> Policy:
    row = db.get(ProviderKeyPolicy, provider)
    if row is None:
        row = ProviderKeyPolicy(provider=provider, allow_user_keys=False, studio_key_fallback=True)
        db.add(row)
    if allow_user_keys is not None:
        row.allow_user_keys = allow_user_keys
    if studio_key_fallback is not None:
        row.studio_key_fallback = studio_key_fallback
    row.updated_at = utcnow()
    db.flush()
    return Policy(provider, row.allow_user_keys, row.studio_key_fallback)


# ---- a user's keys ----


@dataclass(frozen=True)
class StoredKeyView:
    """What the owner may see of a stored key: that it is set, and how it ends."""

    provider: str
    hint: str


def check_key_text(api_key: str) -> str:
    key = api_key.strip()
    if not KEY_MIN_LENGTH <= len(key) <= KEY_MAX_LENGTH:
        raise Invalid("api_key", f"A key has {KEY_MIN_LENGTH} to {KEY_MAX_LENGTH} characters.")
    if not key.isascii() or not key.isprintable() or any(char.isspace() for char in key):
        raise Invalid("api_key", "A key is printable ASCII without spaces.")
    return key


def store_key(db: Session, sealer: Sealer, user_id: uuid.UUID, provider: str, api_key: str) -> StoredKeyView:
    """Seal and store (or replace) the user's key; 403 own_keys_not_allowed when the policy says no."""
    key = check_key_text(api_key)
    if not policy(db, provider).allow_user_keys:
        raise ApiError(403, "own_keys_not_allowed", f"This studio does not let users bring their own {provider} key.")
    sealed = sealer.seal(key, _context(user_id, provider))
    hint = key[-HINT_LENGTH:]
    row = db.scalar(
        select(UserProviderKey).where(UserProviderKey.user_id == user_id, UserProviderKey.provider == provider)
    )
    if row is None:
        db.add(UserProviderKey(user_id=user_id, provider=provider, sealed=sealed, hint=hint))
    else:
        row.sealed, row.hint, row.updated_at = sealed, hint, utcnow()
    db.flush()
    return StoredKeyView(provider, hint)


def delete_key(db: Session, user_id: uuid.UUID, provider: str) -> bool:
    result = db.execute(
        delete(UserProviderKey).where(UserProviderKey.user_id == user_id, UserProviderKey.provider == provider)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def stored_keys(db: Session, user_id: uuid.UUID) -> dict[str, StoredKeyView]:
    rows = db.execute(
        select(UserProviderKey.provider, UserProviderKey.hint).where(UserProviderKey.user_id == user_id)
    ).all()
    return {provider: StoredKeyView(provider, hint) for provider, hint in rows}


def own_key_providers(db: Session, user_id: uuid.UUID) -> frozenset[str]:
    """Providers whose generations this user's own key would pay for: stored, and allowed now."""
    names = list(stored_keys(db, user_id))
    return frozenset(name for name, rule in policies(db, names).items() if rule.allow_user_keys)


# ---- at run time ----


def key_for_run(db: Session, sealer: Callable[[], Sealer], user_id: uuid.UUID, provider: str) -> str | None:
    """The user's own key for a generation about to run on `provider`, or None for the studio's key.
    `sealer` is asked for only when there is a key to open.

    Raises NotConfiguredError (a fallback provider may take over) when the studio's key may not serve
    this user and they have no usable key of their own."""
    rule = policy(db, provider)
    row = None
    if rule.allow_user_keys:
        row = db.scalar(
            select(UserProviderKey).where(UserProviderKey.user_id == user_id, UserProviderKey.provider == provider)
        )
    if row is not None:
        try:
            return sealer().open(row.sealed, _context(user_id, provider))
        except SealBroken:
            raise NotConfiguredError(
                f"your {provider} key cannot be read with this studio's secret; store it again"
            ) from None
    if not rule.studio_key_fallback:
        raise NotConfiguredError(f"{provider} needs your own key in this studio; add it in your settings")
    return None


# ---- rotation ----


@dataclass(frozen=True)
class Rotation:
    rotated: int
    already_current: int
    unreadable: int


def rotate(db: Session, old: Sealer, new: Sealer) -> Rotation:
    """Re-seal every stored key from the old secret to the new one. Keys already sealed under the new
    secret are left as they are, so running it twice is harmless; keys that open with neither are
    counted and left (their owners must store them again)."""
    rotated = current = unreadable = 0
    for row in db.scalars(select(UserProviderKey).order_by(UserProviderKey.id).with_for_update()):
        context = _context(row.user_id, row.provider)
        try:
            new.open(row.sealed, context)
            current += 1
            continue
        except SealBroken:
            pass
        try:
            plaintext = old.open(row.sealed, context)
        except SealBroken:
            unreadable += 1
            continue
        row.sealed = new.seal(plaintext, context)
        rotated += 1
    db.flush()
    return Rotation(rotated, current, unreadable)
