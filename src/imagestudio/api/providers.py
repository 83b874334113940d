"""GET /api/v1/providers: what is registered, whether it is configured and enabled, what it can do.
POST /api/v1/providers/refresh (administrators): ask the providers which models they have now.

An HTTP edge over the registry, so it lives with the router above every layer it reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from imagestudio.accounts import audit, provider_keys
from imagestudio.accounts.deps import AdminUser, CurrentUser, DbSession
from imagestudio.container import Container, ContainerDep
from imagestudio.kit.http import client_address
from imagestudio.kit.pagination import Page
from imagestudio.models import ProviderRecord, User
from imagestudio.providers.registry import UnknownProvider

router = APIRouter(prefix="/providers", tags=["providers"])


class ProviderOut(BaseModel):
    name: str
    kind: str
    enabled: bool
    configured: bool
    configuration_problem: str | None
    # types, default_model, max_images, min_size, max_size, size_multiple, upscale_factors,
    # honours_seed, honours_negative_prompt, honours_strength, supports_mask
    capabilities: dict[str, Any]
    # Each: id, label, types, max_images, sizes ([[w, h], ...] or null), aspect_ratios,
    # guidance_range ([low, high] or null)
    models: list[dict[str, Any]]
    models_refreshed_at: datetime | None = Field(
        description="When the provider last listed its models itself; null: the studio's own table."
    )
    refresh_problem: str | None = Field(description="Why the last attempt to list the models failed.")
    default: bool = Field(description="The provider a request without `provider` goes to.")
    own_key: bool = Field(
        default=False, description="Your own key for it is stored and allowed: your generations there run on it."
    )
    needs_own_key: bool = Field(
        default=False, description="Here it runs only on users' own keys, and you have none stored for it."
    )


class RefreshOut(BaseModel):
    # Provider name -> null when its models were listed, else why not. Providers that cannot list
    # models, or are not configured, are absent.
    outcomes: dict[str, str | None]
    providers: list[ProviderOut]


@router.get("", response_model=Page[ProviderOut])
def list_providers(db: DbSession, user: CurrentUser, container: ContainerDep) -> Page[ProviderOut]:
    """Every provider any process of this studio registered (API processes and workers alike), by
    name, and whether your own key serves you there. The list is short, so it is always one page
    (`next_cursor` is null)."""
    return Page(items=_listing(db, container, user), next_cursor=None)


@router.post("/refresh", response_model=RefreshOut)
async def refresh_providers(request: Request, admin: AdminUser, container: ContainerDep) -> RefreshOut:
    """Ask every configured provider that can list its models for them now, and store the answer."""
    outcomes = await container.registry.refresh_and_sync(container.db)
    address = client_address(request, container.settings)
    return await run_in_threadpool(_recorded, container, admin, address, outcomes)


def _recorded(container: Container, admin: User, address: str, outcomes: dict[str, str | None]) -> RefreshOut:
    with container.db.writing() as db:
        audit.record(db, "providers.refreshed", actor=admin, address=address, details={"outcomes": outcomes})
        db.commit()
    with container.db.reading() as db:
        return RefreshOut(outcomes=outcomes, providers=_listing(db, container, admin))


def _listing(db: Session, container: Container, user: User) -> list[ProviderOut]:
    try:
        default = container.registry.default_name
    except UnknownProvider:
        default = None
    own_keys = provider_keys.own_key_providers(db, user.id)
    rules = provider_keys.policies(db, provider_keys.keyed_providers(container.registry))
    only_own = {name for name, rule in rules.items() if not rule.studio_key_fallback} - own_keys
    rows = db.scalars(select(ProviderRecord).order_by(ProviderRecord.name))
    return [
        ProviderOut(
            name=row.name,
            kind=row.kind,
            enabled=row.enabled,
            configured=row.configured,
            configuration_problem=row.configuration_problem,
            capabilities=dict(row.capabilities or {}),
            models=list(row.models or []),
            models_refreshed_at=row.models_refreshed_at,
            refresh_problem=row.refresh_problem,
            default=row.name == default,
            own_key=row.name in own_keys,
            needs_own_key=row.name in only_own,
        )
        for row in rows
    ]
