"""Every list answers one `Page[T]` (`{items, next_cursor}`), newest first, with one cursor format.

    @router.get("", response_model=Page[ThingOut])
    def list_things(db: DbSession, user: CurrentUser, page: PageParams) -> Page[ThingOut]:
        statement = select(Thing).where(Thing.owner_id == user.id)
        rows, next_cursor = keyset_page(db, statement, Thing.created_at, Thing.id, page.limit, page.cursor)
        return Page(items=[ThingOut.model_validate(row) for row in rows], next_cursor=next_cursor)

Lists page by (timestamp, id) keysets: by creation, or by last activity for sessions. A cursor is
"<microseconds since the epoch>_<row id in hex>" of the last row served; clients pass it back
unchanged. The OpenAPI document states that pattern, and every string matching it is accepted (a
cursor of another shape is a 422 `invalid_cursor` naming the `cursor` field).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from imagestudio.kit.errors import Invalid

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200
# "<microseconds since the epoch>_<row id as 32 hex digits>". Every string of this shape is a
# valid cursor (17 digits stay below the year 9999), so a client cannot build one we refuse.
CURSOR_PATTERN = r"^[0-9]{1,17}_[0-9a-f]{32}$"
_CURSOR = re.compile(r"([0-9]{1,17})_([0-9a-f]{32})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(
        description="next_cursor of the previous page, unchanged; omit for the first page.",
        # Stated for clients, checked by decode_cursor, so a wrong one answers `invalid_cursor`.
        json_schema_extra={"pattern": CURSOR_PATTERN},
    ),
]


class Page(BaseModel, Generic[T]):
    """Pass next_cursor back as `cursor` for the next page; null means the end."""

    items: list[T]
    next_cursor: str | None = None


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: str | None


def page_request(limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor)


PageParams = Annotated[PageRequest, Depends(page_request)]


def invalid_cursor() -> Invalid:
    return Invalid(
        "cursor",
        "Pass next_cursor from the previous page unchanged.",
        code="invalid_cursor",
        detail="The cursor is not one this list handed out.",
    )


def encode_cursor(at: datetime, row_id: uuid.UUID) -> str:
    micros = (at.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}_{row_id.hex}"


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    # The query pattern has already vouched for the shape; anything else is a cursor built by hand.
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise invalid_cursor()
    micros, row_hex = match.groups()
    return _EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=row_hex)


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
    """For lists ordered by an aggregate (prompt history), which has no row key: the same format,
    with the offset in the number part."""
    return f"{offset}_{uuid.UUID(int=0).hex}"


def decode_offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    match = _CURSOR.fullmatch(cursor)
    if match is None:
        raise invalid_cursor()
    return int(match.group(1))
