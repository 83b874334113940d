"""Each person's own provider keys (/me/provider-keys) and the administrator's policy on them
(/admin/provider-keys). A key goes in and never comes out: answers say only whether one is set and
how it ends."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import Field, StrictBool, field_validator
from sqlalchemy import func, select

from imagestudio.accounts import audit, provider_keys
from imagestudio.accounts.deps import AdminUser, CurrentUser, DbSession, LoginPrincipal
from imagestudio.accounts.schemas import RequestModel, ResponseModel
from imagestudio.container import ContainerDep
from imagestudio.kit.errors import not_found
from imagestudio.kit.http import client_address
from imagestudio.kit.openapi import not_null
from imagestudio.kit.pagination import Page
from imagestudio.models import UserProviderKey
from imagestudio.models.limits import PROVIDER_NAME_MAX_LENGTH
from imagestudio.providers.registry import ProviderRegistry

router = APIRouter()

ProviderName = Annotated[str, Path(max_length=PROVIDER_NAME_MAX_LENGTH, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class OwnKeyOut(ResponseModel):
    provider: str
    # Whether this studio lets users bring a key for the provider.
    allowed: bool
    # Whether the studio's own key serves you when you have none (false: bring one to use it).
    studio_key_fallback: bool
    # Whether the studio has a key of its own for the provider.
    studio_key_configured: bool
    key_set: bool
    # The last four characters of your key ("…" and them); null when none is set.
    key_hint: str | None


class OwnKeyIn(RequestModel):
    api_key: Annotated[
        str, Field(min_length=provider_keys.KEY_MIN_LENGTH, max_length=provider_keys.KEY_MAX_LENGTH, pattern=r"^\S+$")
    ]


class PolicyOut(ResponseModel):
    provider: str
    allow_user_keys: bool
    studio_key_fallback: bool
    studio_key_configured: bool
    # How many users have a key of their own stored for it.
    user_keys: int


class PolicyUpdate(RequestModel):
    allow_user_keys: Annotated[StrictBool | None, Field(json_schema_extra=not_null)] = None
    studio_key_fallback: Annotated[StrictBool | None, Field(json_schema_extra=not_null)] = None

    @field_validator("allow_user_keys", "studio_key_fallback")
    @classmethod
    def _not_null(cls, value: bool | None) -> bool | None:
        if value is None:
            raise ValueError("may not be null")
        return value


def _keyed_provider(registry: ProviderRegistry, name: str) -> str:
    """The name of a provider that takes users' keys; 404 for any other name."""
    if name not in provider_keys.keyed_providers(registry):
        raise not_found("provider that takes users' keys")
    return name


def _hint(hint: str | None) -> str | None:
    return f"…{hint}" if hint is not None else None


def _own_keys(db: DbSession, registry: ProviderRegistry, user: CurrentUser) -> list[OwnKeyOut]:
    names = provider_keys.keyed_providers(registry)
    rules = provider_keys.policies(db, names)
    stored = provider_keys.stored_keys(db, user.id)
    return [
        OwnKeyOut(
            provider=name,
            allowed=rules[name].allow_user_keys,
            studio_key_fallback=rules[name].studio_key_fallback,
            studio_key_configured=registry.problem(name) is None,
            key_set=name in stored,
            key_hint=_hint(stored[name].hint) if name in stored else None,
        )
        for name in names
    ]


@router.get("/me/provider-keys", response_model=Page[OwnKeyOut], tags=["me"])
def list_own_keys(db: DbSession, user: CurrentUser, container: ContainerDep) -> Page[OwnKeyOut]:
    """The hosted providers, whether you may bring your own key for each, and whether one is set
    (shown only by its last four characters). One page holds them all."""
    return Page(items=_own_keys(db, container.registry, user), next_cursor=None)


@router.put("/me/provider-keys/{provider}", response_model=OwnKeyOut, tags=["me"])
def store_own_key(
    provider: ProviderName,
    body: OwnKeyIn,
    request: Request,
    db: DbSession,
    container: ContainerDep,
    principal: LoginPrincipal,
) -> OwnKeyOut:
    """Store (or replace) your own key for a hosted provider; your generations there use it. Sealed at
    rest, never shown again: the answer says only how it ends. 403 own_keys_not_allowed when this
    studio does not let users bring keys for it."""
    name = _keyed_provider(container.registry, provider)
    provider_keys.store_key(db, provider_keys.studio_sealer(container.settings), principal.user_id, name, body.api_key)
    audit.record(
        db,
        "provider_key.stored",
        actor=principal.user,
        target_type="provider",
        target_id=name,
        address=client_address(request, container.settings),
    )
    return next(item for item in _own_keys(db, container.registry, principal.user) if item.provider == name)


@router.delete("/me/provider-keys/{provider}", status_code=204, response_class=Response, tags=["me"])
def delete_own_key(
    provider: ProviderName, request: Request, db: DbSession, container: ContainerDep, principal: LoginPrincipal
) -> Response:
    """Forget your key for a provider (404 when none is stored)."""
    name = _keyed_provider(container.registry, provider)
    if not provider_keys.delete_key(db, principal.user_id, name):
        raise not_found("key")
    audit.record(
        db,
        "provider_key.deleted",
        actor=principal.user,
        target_type="provider",
        target_id=name,
        address=client_address(request, container.settings),
    )
    return Response(status_code=204)


# ---- administration ----


def _policies(db: DbSession, registry: ProviderRegistry) -> list[PolicyOut]:
    names = provider_keys.keyed_providers(registry)
    rules = provider_keys.policies(db, names)
    counts = dict(
        db.execute(
            select(UserProviderKey.provider, func.count())
            .where(UserProviderKey.provider.in_(names))
            .group_by(UserProviderKey.provider)
        ).all()
    )
    return [
        PolicyOut(
            provider=name,
            allow_user_keys=rules[name].allow_user_keys,
            studio_key_fallback=rules[name].studio_key_fallback,
            studio_key_configured=registry.problem(name) is None,
            user_keys=int(counts.get(name, 0)),
        )
        for name in names
    ]


@router.get("/admin/provider-keys", response_model=Page[PolicyOut], tags=["admin"])
def list_policies(db: DbSession, _admin: AdminUser, container: ContainerDep) -> Page[PolicyOut]:
    """For each hosted provider: whether users may bring their own key, and whether the studio's key
    serves those who have none. One page holds them all."""
    return Page(items=_policies(db, container.registry), next_cursor=None)


@router.patch("/admin/provider-keys/{provider}", response_model=PolicyOut, tags=["admin"])
def update_policy(
    provider: ProviderName,
    body: PolicyUpdate,
    request: Request,
    db: DbSession,
    container: ContainerDep,
    admin: AdminUser,
) -> PolicyOut:
    """Change a provider's policy. Keys users stored stay when bringing keys is switched off, unused
    until it is switched on again."""
    name = _keyed_provider(container.registry, provider)
    changes = body.model_dump(exclude_unset=True)
    provider_keys.set_policy(
        db,
        name,
        allow_user_keys=changes.get("allow_user_keys"),
        studio_key_fallback=changes.get("studio_key_fallback"),
    )
    audit.record(
        db,
        "provider_key.policy_changed",
        actor=admin,
        target_type="provider",
        target_id=name,
        address=client_address(request, container.settings),
        details=changes,
    )
    return next(item for item in _policies(db, container.registry) if item.provider == name)
