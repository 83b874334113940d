"""Spend arithmetic on both databases: sums of stored costs are exact decimals (no binary float
on the way), months are calendar months in UTC, and who paid splits the totals."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert

from imagestudio.db import Database
from imagestudio.generations import billing
from imagestudio.models import Generation, User
from imagestudio.models.types import new_id, utcnow
from tests import factories

LARGEST = Decimal("999999.999999")  # the most NUMERIC(12, 6) holds
SMALLEST = Decimal("0.000001")


def _generations(db: Database, owner_id: uuid.UUID, costs: list[Decimal | None], **values: object) -> None:
    now = utcnow()
    rows = [
        {
            "id": new_id(),
            "owner_id": owner_id,
            "type": "text2img",
            "status": "succeeded",
            "provider": "openai",
            "model": "gpt-image-1",
            "prompt": "a kite",
            "width": 1024,
            "height": 1024,
            "num_images": 1,
            "cost": cost,
            "created_at": values.get("created_at", now),
            "updated_at": now,
            "own_key": values.get("own_key", False),
        }
        for cost in costs
    ]
    with db.writing() as session:
        session.execute(insert(Generation), rows)


def _user(db: Database) -> uuid.UUID:
    with db.writing() as session:
        return factories.make_user(session).id


def test_sums_are_exact_where_binary_floats_would_drift(db: Database) -> None:
    owner = _user(db)
    # Added up as floats, a thousand of the largest cost lose the millionths (SQLite keeps NUMERIC
    # values as REAL); added up as whole millionths they are exact.
    costs = [LARGEST] * 1000 + [SMALLEST] * 1000 + [Decimal("0.1")] * 10
    _generations(db, owner, [*costs, None, None])
    since = billing.month_start(utcnow())
    with db.reading() as session:
        total = billing.spend(session, since=since, owner_id=owner)
    assert total == Decimal("1000000001.000000")
    floats = 0.0
    for cost in costs:
        floats += float(cost)
    assert f"{floats:.6f}" == "1000000000.999970"  # what adding them as floats says


def test_who_paid_splits_the_spend_and_other_owners_are_apart(db: Database) -> None:
    alice, bob = _user(db), _user(db)
    _generations(db, alice, [Decimal("0.011130")] * 3)
    _generations(db, alice, [Decimal("0.040000")], own_key=True)
    _generations(db, bob, [Decimal("0.5")])
    since = billing.month_start(utcnow())
    with db.reading() as session:
        assert billing.spend(session, since=since, owner_id=alice, own_key=False) == Decimal("0.033390")
        assert billing.spend(session, since=since, owner_id=alice, own_key=True) == Decimal("0.040000")
        assert billing.spend(session, since=since, owner_id=alice) == Decimal("0.073390")
        assert billing.spend(session, since=since, own_key=False) == Decimal("0.533390")
        by_owner = billing.spend_by_owner(session, since, [alice, bob, uuid.uuid4()])
    assert (by_owner[alice].studio, by_owner[alice].own_keys) == (Decimal("0.033390"), Decimal("0.040000"))
    assert (by_owner[bob].studio, by_owner[bob].own_keys) == (Decimal("0.500000"), Decimal("0.000000"))
    assert len(by_owner) == 3


def test_last_month_counts_for_last_month_only(db: Database) -> None:
    owner = _user(db)
    start = billing.month_start(utcnow())
    _generations(db, owner, [Decimal("2")], created_at=start - timedelta(microseconds=1))
    _generations(db, owner, [Decimal("3")], created_at=start)
    with db.reading() as session:
        assert billing.spend(session, since=start, owner_id=owner) == Decimal("3.000000")


def test_months_are_calendar_months_in_utc() -> None:
    late = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert billing.month_start(late) == datetime(2026, 12, 1, tzinfo=UTC)
    assert billing.next_month_start(late) == datetime(2027, 1, 1, tzinfo=UTC)
    assert billing.next_month_start(datetime(2026, 2, 14, tzinfo=UTC)) == datetime(2026, 3, 1, tzinfo=UTC)


def test_a_session_total_is_decimal_arithmetic() -> None:
    costs = [Decimal("0.1")] * 10 + [None, Decimal("0.000001")]
    assert billing.total_of(costs).amount == Decimal("1.000001")
    assert str(billing.total_of([]).amount) == "0.000000"


def test_budgets_compare_spend_of_the_studios_keys(db: Database) -> None:
    owner = _user(db)
    with db.writing() as session:
        session.get(User, owner).monthly_budget = Decimal("1")
    _generations(db, owner, [Decimal("0.999999")])
    _generations(db, owner, [Decimal("5")], own_key=True)
    with db.reading() as session:
        billing.check_budgets(session, owner)  # own keys count against no budget
    _generations(db, owner, [SMALLEST])
    with db.reading() as session:
        try:
            billing.check_budgets(session, owner)
        except billing.TooMany as refusal:
            assert refusal.code == "budget_exceeded" and refusal.retry_after >= 1
        else:
            raise AssertionError("a spent budget must refuse")
