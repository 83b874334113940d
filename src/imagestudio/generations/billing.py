"""What generations cost and who pays: spend per month, sessions and users, and the monthly budgets
that stop new paid generations.

Spend is the sum of `generations.cost` (the price table applied to the usage each provider
reported). It is added up as whole millionths (the column's scale) in SQL, so no database adds
binary floats. A month is a calendar month in UTC, and a generation counts in the month it was
created. What an owner's own key paid for is theirs: it shows in their spend but counts against no
budget. A budget is checked when a generation is asked for, against what finished generations
cost; the ones still running can take spend past it by their own cost.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, ColumnElement, Select, cast, func, select
from sqlalchemy.orm import Session

from imagestudio.accounts import provider_keys
from imagestudio.kit.errors import ApiError, TooMany
from imagestudio.kit.money import Money
from imagestudio.kit.money import money as kit_money
from imagestudio.models import Generation, StudioSettings, User
from imagestudio.models.types import utcnow
from imagestudio.providers.pricing import CURRENCY, QUANTUM
from imagestudio.providers.registry import ProviderRegistry

MICROS = Decimal(1_000_000)


def money(amount: Decimal | None) -> Money | None:
    """An amount in the price table's currency, as the API shows it (six decimal places)."""
    return kit_money(None if amount is None else Decimal(amount).quantize(QUANTUM), CURRENCY)


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    start = month_start(now)
    return start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)


def _micros() -> ColumnElement:
    """The sum of costs in whole millionths: exact on both databases (SQLite keeps NUMERIC as REAL)."""
    return func.coalesce(func.sum(cast(func.round(Generation.cost * 1_000_000), BigInteger)), 0)


def _amount(micros: int | Decimal | None) -> Decimal:
    return (Decimal(int(micros or 0)) / MICROS).quantize(QUANTUM)


def _spend(db: Session, query: Select) -> Decimal:
    return _amount(db.scalar(query))


def spend(
    db: Session,
    *,
    since: datetime,
    owner_id: uuid.UUID | None = None,
    own_key: bool | None = None,
) -> Decimal:
    """What generations created since `since` cost: one owner's or everyone's; paid by the studio's
    keys (own_key False), the owners' own keys (True) or either (None)."""
    query = select(_micros()).where(Generation.created_at >= since, Generation.cost.is_not(None))
    if owner_id is not None:
        query = query.where(Generation.owner_id == owner_id)
    if own_key is not None:
        query = query.where(Generation.own_key.is_(own_key))
    return _spend(db, query)


def total_of(costs: Iterable[Decimal | None]) -> Money:
    """The sum of known costs, in Decimal arithmetic (unknown ones add nothing)."""
    total = sum((Decimal(cost) for cost in costs if cost is not None), Decimal(0))
    return kit_money(total.quantize(QUANTUM), CURRENCY)  # type: ignore[return-value]


@dataclass(frozen=True)
class OwnerSpend:
    owner_id: uuid.UUID
    studio: Decimal
    own_keys: Decimal


def spend_by_owner(db: Session, since: datetime, owner_ids: list[uuid.UUID]) -> dict[uuid.UUID, OwnerSpend]:
    """Each listed owner's spend since `since`, split by who paid; owners without any spend included."""
    rows = db.execute(
        select(Generation.owner_id, Generation.own_key, _micros())
        .where(Generation.owner_id.in_(owner_ids), Generation.created_at >= since, Generation.cost.is_not(None))
        .group_by(Generation.owner_id, Generation.own_key)
    ).all()
    totals: dict[uuid.UUID, dict[bool, Decimal]] = {owner: {} for owner in owner_ids}
    for owner_id, own_key, micros in rows:
        totals[owner_id][bool(own_key)] = _amount(micros)
    zero = _amount(0)
    return {
        owner: OwnerSpend(owner, paid.get(False, zero), paid.get(True, zero)) for owner, paid in totals.items()
    }


# ---- budgets ----


def studio_budget(db: Session) -> Decimal | None:
    row = db.get(StudioSettings, 1)
    return row.monthly_budget if row is not None else None


def set_studio_budget(db: Session, amount: Decimal | None) -> Decimal | None:
    row = db.get(StudioSettings, 1)
    if row is None:
        row = StudioSettings(id=1)
        db.add(row)
    row.monthly_budget = amount
    row.updated_at = utcnow()
    db.flush()
    return row.monthly_budget


def check_budgets(db: Session, owner_id: uuid.UUID, now: datetime | None = None) -> None:
    """429 budget_exceeded (Retry-After: the next month) once the studio's keys spent the owner's
    monthly budget, or the studio's own, this month."""
    now = now or utcnow()
    since = month_start(now)
    retry_after = int((next_month_start(now) - now).total_seconds())
    owner = db.get(User, owner_id)
    user_budget = owner.monthly_budget if owner is not None else None
    if user_budget is not None and spend(db, since=since, owner_id=owner_id, own_key=False) >= user_budget:
        raise TooMany(
            "budget_exceeded",
            f"Your monthly budget of {user_budget.normalize():f} {CURRENCY} for paid providers is spent; "
            "it renews on the 1st (UTC). The built-in and local providers still work.",
            retry_after,
        )
    total_budget = studio_budget(db)
    if total_budget is not None and spend(db, since=since, own_key=False) >= total_budget:
        raise TooMany(
            "budget_exceeded",
            f"This studio's monthly budget of {total_budget.normalize():f} {CURRENCY} for paid providers is spent; "
            "it renews on the 1st (UTC). The built-in and local providers still work.",
            retry_after,
        )


def admit_paid(db: Session, registry: ProviderRegistry, owner_id: uuid.UUID, provider: str, *, own_key: bool) -> None:
    """Before a generation is queued on `provider`: free providers pass; a paid one needs either the
    owner's own key, or the studio's key (when the policy lets it serve them) with budget left."""
    if provider not in registry or not provider_keys.takes_user_keys(registry.get(provider)) or own_key:
        return
    if not provider_keys.policy(db, provider).studio_key_fallback:
        raise ApiError(
            403,
            "own_key_required",
            f"In this studio {provider} runs only on your own key: add it in your settings, or choose another "
            "provider.",
        )
    check_budgets(db, owner_id)
