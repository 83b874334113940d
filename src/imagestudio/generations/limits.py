"""What a user may ask for before anything is queued: a generation rate per minute, a daily image
quota, and an optional blocklist of prompt words.

Each limit is one conditional upsert on a shared counter (kit.counters), in the request's
transaction: the counter only moves when the result stays within the limit, so concurrent requests
can never overshoot it, and a request that fails later rolls its count back with everything else.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from imagestudio.config import Settings
from imagestudio.kit import counters
from imagestudio.kit.errors import Invalid, TooMany
from imagestudio.models import User
from imagestudio.models.types import utcnow


@dataclass(frozen=True)
class Limits:
    rate_per_minute: int | None
    daily_images: int | None


def limits_for(user: User, settings: Settings) -> Limits:
    """The user's own limits; where unset, the configured defaults (None: unlimited)."""
    rate = user.rate_per_minute if user.rate_per_minute is not None else settings.default_rate_per_minute
    daily = user.daily_image_quota if user.daily_image_quota is not None else settings.default_daily_image_quota
    return Limits(rate_per_minute=rate, daily_images=daily)


def consume(db: Session, user: User, settings: Settings, images: int, now: datetime | None = None) -> None:
    """Count one generation of `images` images against the user's limits, or raise 429 with Retry-After.

    Call it before anything else in the transaction writes (then every request takes its locks in the
    same order: counters, session, event log)."""
    now = now or utcnow()
    limits = limits_for(user, settings)
    if limits.rate_per_minute is not None:
        bucket = f"generations:{user.id}"
        if counters.add(db, bucket, now, counters.MINUTE, 1, limits.rate_per_minute) is None:
            raise TooMany(
                "rate_limited",
                f"At most {limits.rate_per_minute} generations a minute; wait a moment.",
                counters.seconds_left(now, counters.MINUTE),
            )
    if limits.daily_images is not None:
        bucket = f"images:{user.id}"
        if counters.add(db, bucket, now, counters.DAY, images, limits.daily_images) is None:
            raise TooMany(
                "quota_exceeded",
                f"This would pass your daily quota of {limits.daily_images} images; it resets at 00:00 UTC.",
                counters.seconds_left(now, counters.DAY),
            )


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
            raise Invalid(
                field,
                "Contains a blocked term.",
                code="content_rejected",
                detail=f"The {field.replace('_', ' ')} contains {match.group(0)!r}, which this studio does not allow.",
            )
