"""Administration of spend: what each user's generations cost this month, and the studio's monthly
budget (a user's own budget is set with PATCH /admin/users/{id}, field monthly_budget)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import select

from imagestudio.accounts import audit
from imagestudio.accounts.deps import AdminUser, DbSession
from imagestudio.accounts.schemas import RequestModel
from imagestudio.container import SettingsDep
from imagestudio.generations import billing
from imagestudio.kit.http import client_address
from imagestudio.kit.money import AmountText, Money, parse_amount
from imagestudio.kit.pagination import Page, PageParams, keyset_page
from imagestudio.models import User
from imagestudio.models.types import utcnow

router = APIRouter(prefix="/admin", tags=["admin"])


class UserSpendOut(BaseModel):
    user_id: uuid.UUID
    email: str
    # The user's own monthly budget for the studio's keys (null: none).
    monthly_budget: Money | None
    # This month (UTC): what the studio's keys spent for them, and what their own keys paid.
    spent: Money
    spent_own_keys: Money
    since: datetime


class StudioBudgetOut(BaseModel):
    # What the studio's keys may spend a month for everyone together (null: no limit).
    monthly_budget: Money | None
    spent: Money
    spent_own_keys: Money
    left: Money | None
    since: datetime
    renews_at: datetime


class StudioBudgetUpdate(RequestModel):
    # A decimal string ("100", "49.99"); null removes the studio's budget.
    monthly_budget: AmountText | None


def _money(amount: Decimal) -> Money:
    result = billing.money(amount)
    assert result is not None
    return result


@router.get("/spend", response_model=Page[UserSpendOut])
def list_spend(db: DbSession, _admin: AdminUser, page: PageParams) -> Page[UserSpendOut]:
    """Each user's spend this month (UTC) and their budget, in the order users were created."""
    since = billing.month_start(utcnow())
    users, next_cursor = keyset_page(db, select(User), User.created_at, User.id, page.limit, page.cursor)
    spend = billing.spend_by_owner(db, since, [user.id for user in users])
    items = [
        UserSpendOut(
            user_id=user.id,
            email=user.email,
            monthly_budget=billing.money(user.monthly_budget),
            spent=_money(spend[user.id].studio),
            spent_own_keys=_money(spend[user.id].own_keys),
            since=since,
        )
        for user in users
    ]
    return Page(items=items, next_cursor=next_cursor)


def _studio_budget(db: DbSession) -> StudioBudgetOut:
    now = utcnow()
    since = billing.month_start(now)
    budget = billing.studio_budget(db)
    spent = billing.spend(db, since=since, own_key=False)
    return StudioBudgetOut(
        monthly_budget=billing.money(budget),
        spent=_money(spent),
        spent_own_keys=_money(billing.spend(db, since=since, own_key=True)),
        left=billing.money(max(Decimal(0), budget - spent)) if budget is not None else None,
        since=since,
        renews_at=billing.next_month_start(now),
    )


@router.get("/budget", response_model=StudioBudgetOut)
def get_budget(db: DbSession, _admin: AdminUser) -> StudioBudgetOut:
    """The studio's monthly budget for its own provider keys, and what they spent this month."""
    return _studio_budget(db)


@router.put("/budget", response_model=StudioBudgetOut)
def put_budget(
    body: StudioBudgetUpdate, request: Request, db: DbSession, settings: SettingsDep, admin: AdminUser
) -> StudioBudgetOut:
    """Set (or, with null, remove) the studio's monthly budget. Once spent, new generations on paid
    providers that would use the studio's keys are refused with 429 budget_exceeded until the month
    ends; the built-in and local providers, and users' own keys, go on working."""
    billing.set_studio_budget(db, parse_amount(body.monthly_budget))
    audit.record(
        db,
        "budget.changed",
        actor=admin,
        target_type="studio",
        target_id=None,
        address=client_address(request, settings),
        details={"monthly_budget": body.monthly_budget},
    )
    return _studio_budget(db)
