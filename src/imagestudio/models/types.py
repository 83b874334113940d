"""Column types shared by every table: UTC timestamps, time-ordered UUIDs, portable JSON."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import uuid6
from sqlalchemy import JSON, BigInteger, DateTime, Dialect, Integer, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB

# JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only autoincrements INTEGER PRIMARY KEY, so big ids are INTEGER there.
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


def new_id() -> uuid.UUID:
    """A UUIDv7: time-ordered, so primary keys sort by creation and keyset pagination works."""
    return uuid6.uuid7()


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in and out, on databases with (PostgreSQL) or without (SQLite) tz support."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text: store one fixed format without offset.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
