"""GET /api/v1/providers: what is registered, whether it is configured and enabled, what it can do.

An HTTP edge over the registry, so it lives with the router above every layer it reads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from imagestudio.accounts.deps import CurrentUser, DbSession
from imagestudio.container import ContainerDep
from imagestudio.kit.pagination import Page
from imagestudio.models import ProviderRecord
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
    # Each: id, label, types, max_images, sizes ([[w, h], ...] or null), aspect_ratios
    models: list[dict[str, Any]]
    default: bool = Field(description="The provider a request without `provider` goes to.")


@router.get("", response_model=Page[ProviderOut])
def list_providers(db: DbSession, _user: CurrentUser, container: ContainerDep) -> Page[ProviderOut]:
    """Every provider any process of this studio registered (API processes and workers alike), by
    name. The list is short, so it is always one page (`next_cursor` is null)."""
    try:
        default = container.registry.default_name
    except UnknownProvider:
        default = None
    rows = db.scalars(select(ProviderRecord).order_by(ProviderRecord.name))
    items = [
        ProviderOut(
            name=row.name,
            kind=row.kind,
            enabled=row.enabled,
            configured=row.configured,
            configuration_problem=row.configuration_problem,
            capabilities=dict(row.capabilities or {}),
            models=list(row.models or []),
            default=row.name == default,
        )
        for row in rows
    ]
    return Page(items=items, next_cursor=None)
