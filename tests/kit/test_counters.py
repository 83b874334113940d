"""The shared fixed-window counters: exact under concurrent writers, never past a limit, windowed,
and cleaned as windows pass."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from imagestudio.db import Database
from imagestudio.kit import counters
from imagestudio.models import RateCounter


def test_concurrent_adds_are_all_counted(db: Database) -> None:
    now = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)

    def one_hit(_: int) -> int | None:
        with db.writing() as session:
            return counters.add(session, "login:account:x", now, 60)

    with ThreadPoolExecutor(max_workers=4) as pool:
        totals = sorted(pool.map(one_hit, range(20)))
    # Every writer saw a distinct running total: no increment was lost.
    assert totals == list(range(1, 21))
    with db.reading() as session:
        assert counters.count(session, "login:account:x", now, 60) == 20


def test_concurrent_adds_never_pass_a_limit(db: Database) -> None:
    now = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)

    def take_two(_: int) -> int | None:
        with db.writing() as session:
            return counters.add(session, "images:u", now, counters.DAY, amount=2, limit=7)

    with ThreadPoolExecutor(max_workers=4) as pool:
        totals = list(pool.map(take_two, range(10)))
    # 2 + 2 + 2 fit in 7; the rest are refused and change nothing.
    assert sorted(total for total in totals if total is not None) == [2, 4, 6]
    assert totals.count(None) == 7
    with db.writing() as session:
        assert counters.count(session, "images:u", now, counters.DAY) == 6
        assert counters.add(session, "images:u", now, counters.DAY, amount=8, limit=7) is None
        assert counters.add(session, "images:u", now, counters.DAY, amount=1, limit=7) == 7


def test_windows_are_fixed_and_old_ones_are_dropped(db: Database) -> None:
    start = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    with db.writing() as session:
        counters.add(session, "b", start + timedelta(seconds=5), 60)
        counters.add(session, "b", start + timedelta(seconds=59), 60)
        counters.add(session, "other", start, 60)
    with db.writing() as session:
        assert counters.count(session, "b", start + timedelta(seconds=30), 60) == 2
        assert counters.add(session, "b", start + timedelta(seconds=61), 60) == 1
    with db.reading() as session:
        rows = session.execute(select(RateCounter.bucket, RateCounter.window_start)).all()
    assert sorted(rows) == [("b", start + timedelta(seconds=60)), ("other", start)]


def test_windows_are_utc_minutes_and_days_and_retry_after_is_what_is_left() -> None:
    now = datetime(2030, 1, 1, 12, 14, 0, tzinfo=UTC)
    assert counters.window_start(now, 900) == datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert counters.window_start(now, counters.DAY) == datetime(2030, 1, 1, tzinfo=UTC)
    assert counters.window_start(now + timedelta(seconds=30.5), counters.MINUTE) == now
    assert counters.seconds_left(now, 900) == 60
    assert counters.seconds_left(now + timedelta(seconds=59.5), 900) == 1


def test_bucket_names_do_not_keep_the_raw_values() -> None:
    name = counters.bucket_name("login:account-address", "alice@example.test", "192.0.2.1")
    assert "alice" not in name and "192.0.2" not in name
    assert name.startswith("login:account-address:") and len(name) <= 200
    assert name == counters.bucket_name("login:account-address", "alice@example.test", "192.0.2.1")
    assert name != counters.bucket_name("login:account-address", "alice@example.test", "192.0.2.2")
