"""GET /api/v1/me/usage: the images and language-model tokens a user used today and this month, by
provider, what they cost, and what their limits and budget leave them. Days and months are UTC, like
the daily quota."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from imagestudio.accounts.deps import AdminUser, CurrentUser, DbSession
from imagestudio.config import Settings
from imagestudio.container import SettingsDep
from imagestudio.generations import billing
from imagestudio.generations.limits import limits_for
from imagestudio.kit import counters
from imagestudio.kit.errors import not_found
from imagestudio.kit.money import Money
from imagestudio.models import Asset, Caption, Generation, GenerationType, Message, PromptMethod, RunStatus, User
from imagestudio.models.types import utcnow

router = APIRouter(tags=["me"])


class ProviderUsage(BaseModel):
    provider: str
    images: int
    prompt_tokens: int
    completion_tokens: int


class PeriodUsage(BaseModel):
    since: datetime
    images: int
    prompt_tokens: int
    completion_tokens: int
    # What generations asked for in the period cost, whoever's key paid; and of that, your own keys.
    spend: Money
    spend_own_keys: Money
    by_provider: list[ProviderUsage]


class Quota(BaseModel):
    daily_images: int | None
    # What the daily quota leaves today (null: unlimited).
    images_left_today: int | None
    rate_per_minute: int | None


class Budget(BaseModel):
    # Your monthly budget for the studio's keys (null: none of your own; the studio may have one).
    monthly: Money | None
    # What the studio's keys spent for you this month, and what your budget leaves (null: no budget).
    spent: Money
    left: Money | None
    renews_at: datetime


class UsageOut(BaseModel):
    today: PeriodUsage
    month: PeriodUsage
    quota: Quota
    budget: Budget


def _period(db: Session, owner_id: uuid.UUID, since: datetime) -> PeriodUsage:
    # Outputs count for the provider that served them (a fallback, when one took over).
    provider = func.coalesce(Generation.served_by, Generation.provider)
    images = db.execute(
        select(provider, func.count(Asset.id))
        .join(Generation, Generation.id == Asset.generation_id)
        .where(Asset.owner_id == owner_id, Asset.kind == "output", Asset.created_at >= since)
        .group_by(provider)
    ).all()
    tokens = db.execute(
        select(
            Caption.provider,
            func.coalesce(func.sum(Caption.prompt_tokens), 0),
            func.coalesce(func.sum(Caption.completion_tokens), 0),
        )
        .where(
            Caption.owner_id == owner_id,
            Caption.created_at >= since,
            Caption.text.is_not(None),
            Caption.provider.is_not(None),
        )
        .group_by(Caption.provider)
    ).all()
    # Replies: the tokens are on the assistant message the reply job wrote.
    replies = db.execute(
        select(
            provider,
            func.coalesce(func.sum(Message.prompt_tokens), 0),
            func.coalesce(func.sum(Message.completion_tokens), 0),
        )
        .join(Message, Message.id == Generation.message_id)
        .where(
            Generation.owner_id == owner_id,
            Generation.type == GenerationType.reply.value,
            Generation.status == RunStatus.succeeded.value,
            Generation.completed_at >= since,
        )
        .group_by(provider)
    ).all()
    # Prompts a language model rewrote: the tokens are in the generation's prompt plan.
    plan = Generation.prompt_plan
    planned = (
        select(
            plan["provider"].as_string().label("provider"),
            plan["prompt_tokens"].as_integer().label("prompt_tokens"),
            plan["completion_tokens"].as_integer().label("completion_tokens"),
        )
        .where(
            Generation.owner_id == owner_id,
            Generation.prompt_method == PromptMethod.language_model.value,
            Generation.created_at >= since,
        )
        .subquery()
    )
    rewritten = db.execute(
        select(
            planned.c.provider,
            func.coalesce(func.sum(planned.c.prompt_tokens), 0),
            func.coalesce(func.sum(planned.c.completion_tokens), 0),
        ).group_by(planned.c.provider)
    ).all()
    by_provider: dict[str, ProviderUsage] = {}
    for name, count in images:
        by_provider[name] = ProviderUsage(provider=name, images=count, prompt_tokens=0, completion_tokens=0)
    for name, prompt_tokens, completion_tokens in [*tokens, *replies, *rewritten]:
        if name is None:
            continue
        entry = by_provider.setdefault(
            name, ProviderUsage(provider=name, images=0, prompt_tokens=0, completion_tokens=0)
        )
        entry.prompt_tokens += int(prompt_tokens)
        entry.completion_tokens += int(completion_tokens)
    rows = sorted(by_provider.values(), key=lambda entry: entry.provider)
    return PeriodUsage(
        since=since,
        images=sum(entry.images for entry in rows),
        prompt_tokens=sum(entry.prompt_tokens for entry in rows),
        completion_tokens=sum(entry.completion_tokens for entry in rows),
        spend=_money(billing.spend(db, since=since, owner_id=owner_id)),
        spend_own_keys=_money(billing.spend(db, since=since, owner_id=owner_id, own_key=True)),
        by_provider=rows,
    )


def _money(amount: Decimal) -> Money:
    result = billing.money(amount)
    assert result is not None
    return result


def _budget(db: Session, user: User, now: datetime) -> Budget:
    spent = billing.spend(db, since=billing.month_start(now), owner_id=user.id, own_key=False)
    monthly = user.monthly_budget
    return Budget(
        monthly=billing.money(monthly),
        spent=_money(spent),
        left=billing.money(max(Decimal(0), monthly - spent)) if monthly is not None else None,
        renews_at=billing.next_month_start(now),
    )


def usage_of(db: Session, user: User, settings: Settings, now: datetime | None = None) -> UsageOut:
    now = (now or utcnow()).astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    limits = limits_for(user, settings)
    left = None
    if limits.daily_images is not None:
        # The same counter the quota is enforced with (generations.limits.consume).
        used = counters.count(db, f"images:{user.id}", now, counters.DAY)
        left = max(0, limits.daily_images - used)
    return UsageOut(
        today=_period(db, user.id, day),
        month=_period(db, user.id, month),
        quota=Quota(daily_images=limits.daily_images, images_left_today=left, rate_per_minute=limits.rate_per_minute),
        budget=_budget(db, user, now),
    )


@router.get("/me/usage", response_model=UsageOut)
def get_usage(db: DbSession, user: CurrentUser, settings: SettingsDep) -> UsageOut:
    """Images and tokens used today and this month (UTC), by provider, what they cost, and what your
    quota and budget leave."""
    return usage_of(db, user, settings)


@router.get("/admin/users/{user_id}/usage", response_model=UsageOut, tags=["admin"])
def get_user_usage(user_id: uuid.UUID, db: DbSession, admin: AdminUser, settings: SettingsDep) -> UsageOut:
    """A user's images and tokens today and this month, as they see them in their settings (administrators)."""
    user = db.get(User, user_id)
    if user is None:
        raise not_found("user")
    return usage_of(db, user, settings)
