"""Keyset pagination over (timestamp, id), newest first, with opaque cursors.

Lists whose order is a timestamp that is not the id (sessions by last activity, generations and
messages by creation, to use their (owner|session, created_at) indexes) page with this:

    rows, next_cursor = keyset_page(db, statement, Thing.updated_at, Thing.id, limit, cursor)

The cursor is the base64url of "<iso timestamp>|<uuid>" of the last row served; clients pass it back
unchanged. A cursor that does not decode is a 422 naming the `cursor` field.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from imagestudio.kit.errors import ApiError, FieldError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# Offsets past this are not cursors we hand out (and would overflow a database integer).
MAX_OFFSET = 10**9

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[
    str | None, Query(max_length=200, description="next_cursor of the previous page; omit for the first page.")
]


def invalid_cursor() -> ApiError:
    return ApiError(
        422,
        "invalid_cursor",
        "The cursor is not one this list handed out.",
        [FieldError("cursor", "Pass next_cursor from the previous page unchanged.")],
    )


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    raw = f"{at.astimezone(UTC).isoformat()}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, row_id = raw.partition("|")
        at = datetime.fromisoformat(stamp)
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at.astimezone(UTC), uuid.UUID(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_cursor() from None


def keyset_page(
    db: Session,
    statement: Select[Any],
    time_column: InstrumentedAttribute[datetime],
    id_column: InstrumentedAttribute[uuid.UUID],
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[Any], str | None]:
    """One page of `statement`'s entity rows, newest first, and the next page's cursor (None at the end)."""
    if cursor is not None:
        at, row_id = decode_cursor(cursor)
        statement = statement.where(
            or_(time_column < at, and_(time_column == at, id_column < row_id)),
        )
    statement = statement.order_by(time_column.desc(), id_column.desc()).limit(limit + 1)
    rows = db.scalars(statement).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, encode_cursor(getattr(last, time_column.key), getattr(last, id_column.key))


def encode_offset(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def decode_offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("o"):
            raise ValueError(raw)
        offset = int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise invalid_cursor() from None
    if not 0 <= offset <= MAX_OFFSET:
        raise invalid_cursor()
    return offset
