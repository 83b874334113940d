"""The shared hit counters: exact under concurrent writers, windowed, and cleaned as windows pass."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from imagestudio.accounts import throttle
from imagestudio.db import Database
from imagestudio.kit.errors import ApiError
from imagestudio.models import RateCounter


def test_concurrent_hits_are_all_counted(db: Database) -> None:
    now = datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC)

    def one_hit(_: int) -> int:
        with db.writing() as session:
            return throttle.hit(session, "login:account:x", now, 60)

    with ThreadPoolExecutor(max_workers=4) as pool:
        totals = sorted(pool.map(one_hit, range(20)))
    # Every writer saw a distinct running total: no increment was lost.
    assert totals == list(range(1, 21))
    with db.reading() as session:
        assert throttle.hits(session, "login:account:x", now, 60) == 20


def test_windows_are_fixed_and_old_ones_are_dropped(db: Database) -> None:
    start = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    with db.writing() as session:
        throttle.hit(session, "b", start + timedelta(seconds=5), 60)
        throttle.hit(session, "b", start + timedelta(seconds=59), 60)
        throttle.hit(session, "other", start, 60)
    with db.writing() as session:
        assert throttle.hits(session, "b", start + timedelta(seconds=30), 60) == 2
        assert throttle.hit(session, "b", start + timedelta(seconds=61), 60) == 1
    with db.reading() as session:
        rows = session.execute(select(RateCounter.bucket, RateCounter.window_start)).all()
    assert sorted(rows) == [("b", start + timedelta(seconds=60)), ("other", start)]


def test_ensure_below_answers_429_with_the_seconds_left() -> None:
    now = datetime(2030, 1, 1, 12, 14, 0, tzinfo=UTC)
    assert throttle.window_start(now, 900) == datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert throttle.seconds_left(now, 900) == 60
    assert throttle.seconds_left(now + timedelta(seconds=59.5), 900) == 1
    error = throttle.too_many("too_many_attempts", "slow down", 60)
    assert isinstance(error, ApiError) and error.status == 429 and error.headers == {"Retry-After": "60"}


def test_bucket_names_do_not_keep_the_raw_value() -> None:
    name = throttle.bucket_name("login:account", "alice@example.test")
    assert "alice" not in name and name.startswith("login:account:") and len(name) <= 200
    assert name == throttle.bucket_name("login:account", "alice@example.test")
