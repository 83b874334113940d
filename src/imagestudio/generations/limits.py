"""What a user may ask for before anything is queued: a generation rate per minute, a daily image
quota, and an optional blocklist of prompt words.

Each limit is one conditional upsert on usage_counters, in the request's transaction: the counter
only moves when the result stays within the limit, so concurrent requests can never overshoot it,
and a request that fails later rolls its count back with everything else.
"""

from __future__ import annotations

import functools
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from imagestudio.config import Settings
from imagestudio.kit.errors import ApiError, FieldError
from imagestudio.models import UsageCounter, User
from imagestudio.models.types import utcnow

MINUTE = "minute"
DAY = "day"


@dataclass(frozen=True)
class Limits:
    rate_per_minute: int | None
    daily_images: int | None


def limits_for(user: User, settings: Settings) -> Limits:
    """The user's own limits; where unset, the configured defaults (None: unlimited)."""
    rate = user.rate_per_minute if user.rate_per_minute is not None else settings.default_rate_per_minute
    daily = user.daily_image_quota if user.daily_image_quota is not None else settings.default_daily_image_quota
    return Limits(rate_per_minute=rate, daily_images=daily)


def _window(kind: str, now: datetime) -> tuple[datetime, datetime]:
    """Start and end of the fixed window containing now (UTC minutes and UTC days)."""
    now = now.astimezone(UTC)
    if kind == MINUTE:
        start = now.replace(second=0, microsecond=0)
        return start, start + timedelta(minutes=1)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


def _take(db: Session, user_id: uuid.UUID, kind: str, start: datetime, amount: int, limit: int) -> bool:
    """Add amount to the window's counter if the total stays within limit; False (and no change) if not."""
    if amount > limit:
        return False
    insert = postgresql_insert if db.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(UsageCounter)
        .values(user_id=user_id, window_kind=kind, window_start=start, used=amount)
        .on_conflict_do_update(
            index_elements=[UsageCounter.user_id, UsageCounter.window_kind, UsageCounter.window_start],
            set_={"used": UsageCounter.used + amount},
            where=UsageCounter.used + amount <= limit,
        )
        .returning(UsageCounter.used)
    )
    used = db.execute(statement).scalar_one_or_none()
    if used is None:
        return False
    if used == amount:
        # The first use of a new window: earlier windows are never read again.
        db.execute(
            delete(UsageCounter).where(
                UsageCounter.user_id == user_id, UsageCounter.window_kind == kind, UsageCounter.window_start < start
            )
        )
    return True


def consume(db: Session, user: User, settings: Settings, images: int, now: datetime | None = None) -> None:
    """Count one generation of `images` images against the user's limits, or raise 429 with Retry-After.

    Call it before anything else in the transaction writes (then every request takes its locks in the
    same order: counters, session, event log)."""
    now = now or utcnow()
    limits = limits_for(user, settings)
    if limits.rate_per_minute is not None:
        start, end = _window(MINUTE, now)
        if not _take(db, user.id, MINUTE, start, 1, limits.rate_per_minute):
            raise _too_many(
                "rate_limited",
                f"At most {limits.rate_per_minute} generations a minute; wait a moment.",
                end - now,
            )
    if limits.daily_images is not None:
        start, end = _window(DAY, now)
        if not _take(db, user.id, DAY, start, images, limits.daily_images):
            raise _too_many(
                "quota_exceeded",
                f"This would pass your daily quota of {limits.daily_images} images; it resets at 00:00 UTC.",
                end - now,
            )


def _too_many(code: str, detail: str, wait: timedelta) -> ApiError:
    seconds = max(1, math.ceil(wait.total_seconds()))
    return ApiError(429, code, detail, headers={"Retry-After": str(seconds)})


# --- prompt filter -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _blocklist_pattern(blocklist: str) -> re.Pattern[str] | None:
    terms = sorted({" ".join(term.split()) for term in blocklist.split(",") if term.strip()}, key=len, reverse=True)
    if not terms:
        return None
    # Whole words: no letter, digit or underscore may touch the term on either side. Inner spaces
    # match any run of whitespace, so "red  dog" is caught by "red dog".
    alternatives = "|".join(r"\s+".join(re.escape(word) for word in term.split(" ")) for term in terms)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def check_prompt(settings: Settings, texts: Mapping[str, str | None]) -> None:
    """Refuse (422 content_rejected, naming the field) text containing a blocked term.

    `texts` maps field names to what the user wrote there; it runs before anything is queued, so no
    provider ever sees a refused prompt."""
    pattern = _blocklist_pattern(settings.prompt_blocklist)
    if pattern is None:
        return
    for field, text in texts.items():
        if not text:
            continue
        match = pattern.search(text)
        if match:
            raise ApiError(
                422,
                "content_rejected",
                f"The {field.replace('_', ' ')} contains {match.group(0)!r}, which this studio does not allow.",
                [FieldError(field, "Contains a blocked term.")],
            )
