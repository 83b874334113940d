"""Keyset pagination over time-ordered UUID keys: newest first, `?limit=&cursor=`.

def list_things(db: DbSession, user: CurrentUser, page: PageParams) -> Page[ThingOut]:
    statement = select(Thing).where(Thing.owner_id == user.id)
    rows, next_cursor = paginate(db, statement, Thing.id, page)
    return Page(items=[ThingOut.model_validate(row) for row in rows], next_cursor=next_cursor)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: uuid.UUID | None = None


@dataclass(frozen=True)
class PageRequest:
    limit: int
    cursor: uuid.UUID | None


def page_request(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[uuid.UUID | None, Query(description="next_cursor of the previous page")] = None,
) -> PageRequest:
    return PageRequest(limit=limit, cursor=cursor)


PageParams = Annotated[PageRequest, Depends(page_request)]


def paginate(
    db: Session, statement: Select[Any], key: InstrumentedAttribute[uuid.UUID], page: PageRequest
) -> tuple[Sequence[Any], uuid.UUID | None]:
    """Rows of one page (newest first) and the cursor of the next page, None on the last."""
    if page.cursor is not None:
        statement = statement.where(key < page.cursor)
    rows = db.scalars(statement.order_by(key.desc()).limit(page.limit + 1)).all()
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    return rows, getattr(rows[-1], key.key)
