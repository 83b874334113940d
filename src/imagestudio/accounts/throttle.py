"""Fixed-window hit counters in the database, so every process sees the same counts.

A bucket is any name (`login:account:<hash>`, `api_key:<id>`); each window of `window_seconds`
has its own row, incremented with one upsert, so concurrent hits never lose a count.
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

from imagestudio.kit.errors import ApiError
from imagestudio.models import RateCounter

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Window:
    seconds: int
    limit: int


def bucket_name(kind: str, value: str) -> str:
    """A fixed-length bucket name that does not store the raw value (an email, an address)."""
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:40]}"


def window_start(now: datetime, seconds: int) -> datetime:
    elapsed = (now - _EPOCH).total_seconds()
    return _EPOCH + timedelta(seconds=math.floor(elapsed / seconds) * seconds)


def seconds_left(now: datetime, seconds: int) -> int:
    end = window_start(now, seconds) + timedelta(seconds=seconds)
    return max(1, math.ceil((end - now).total_seconds()))


def hits(db: Session, bucket: str, now: datetime, seconds: int) -> int:
    start = window_start(now, seconds)
    return (
        db.scalar(select(RateCounter.hits).where(RateCounter.bucket == bucket, RateCounter.window_start == start)) or 0
    )


def hit(db: Session, bucket: str, now: datetime, seconds: int) -> int:
    """Count one hit in the current window and answer the window's total."""
    start = window_start(now, seconds)
    insert = postgresql_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(RateCounter)
        .values(bucket=bucket, window_start=start, hits=1)
        .on_conflict_do_update(
            index_elements=[RateCounter.bucket, RateCounter.window_start],
            set_={"hits": RateCounter.hits + 1},
        )
        .returning(RateCounter.hits)
    )
    total = db.execute(statement).scalar_one()
    # Windows that have passed are never read again.
    db.execute(delete(RateCounter).where(RateCounter.bucket == bucket, RateCounter.window_start < start))
    return total


def too_many(code: str, detail: str, retry_after: int) -> ApiError:
    return ApiError(429, code, detail, headers={"Retry-After": str(retry_after)})


def ensure_below(db: Session, buckets: list[str], window: Window, now: datetime, code: str, detail: str) -> None:
    """Raise 429 with Retry-After when any bucket has reached the limit in the current window."""
    for bucket in buckets:
        if hits(db, bucket, now, window.seconds) >= window.limit:
            raise too_many(code, detail, seconds_left(now, window.seconds))
