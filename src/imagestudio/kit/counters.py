"""Fixed-window counters in the database (`rate_counters`), so every process sees the same counts.

One implementation for every limit the studio keeps: failed sign-ins, API key requests, generations a
minute and images a day. A bucket is any name (`login:account-address:<hash>`, `generations:<user>`);
each window of `seconds` has its own row, moved with one upsert, so concurrent hits never lose a count.
Windows are aligned to the Unix epoch, so 60-second windows are UTC minutes and 86,400-second windows
UTC days.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from imagestudio.models import RateCounter

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = 60
DAY = 86_400


@dataclass(frozen=True)
class Window:
    seconds: int
    limit: int


def bucket_name(kind: str, *values: str) -> str:
    """A fixed-length bucket name that does not store the raw values (an email, an address)."""
    digest = hashlib.sha256("\0".join(values).encode()).hexdigest()[:40]
    return f"{kind}:{digest}"


def window_start(now: datetime, seconds: int) -> datetime:
    elapsed = (now - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=math.floor(elapsed / seconds) * seconds)


def seconds_left(now: datetime, seconds: int) -> int:
    """Whole seconds until the window containing now ends (at least 1): a Retry-After value."""
    end = window_start(now, seconds) + timedelta(seconds=seconds)
    return max(1, math.ceil((end - now).total_seconds()))


def count(db: Session, bucket: str, now: datetime, seconds: int) -> int:
    start = window_start(now, seconds)
    return (
        db.scalar(select(RateCounter.hits).where(RateCounter.bucket == bucket, RateCounter.window_start == start)) or 0
    )


def add(db: Session, bucket: str, now: datetime, seconds: int, amount: int = 1, limit: int | None = None) -> int | None:
    """Add `amount` to the current window's count and answer the new total.

    With a `limit`, the count only moves when the total stays within it; otherwise nothing changes
    and the answer is None. The check and the increment are one statement, so concurrent callers can
    never overshoot the limit."""
    if limit is not None and amount > limit:
        return None
    start = window_start(now, seconds)
    insert = postgresql_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(RateCounter)
        .values(bucket=bucket, window_start=start, hits=amount)
        .on_conflict_do_update(
            index_elements=[RateCounter.bucket, RateCounter.window_start],
            set_={"hits": RateCounter.hits + amount},
            where=None if limit is None else RateCounter.hits + amount <= limit,
        )
        .returning(RateCounter.hits)
    )
    total = db.execute(statement).scalar_one_or_none()
    if total == amount:
        # The first count of a new window: windows that have passed are never read again.
        db.execute(delete(RateCounter).where(RateCounter.bucket == bucket, RateCounter.window_start < start))
    return total
