"""A session as the studio page opens it, in a fixed number of queries whatever its size: the newest
steps in full (their messages with attachments, their generations with inputs and outputs), older
steps a page at a time, and the complete lineage from a narrow query over every step.

A step is one generation (an image job, or a reply's or UI code's job, which shows through its
message). Pages follow the steps' times (the turn's, else the generation's own), newest first, with
the list cursor of kit.pagination. A page carries the messages between the start of its oldest
turn and the start of the next newer page's oldest turn, so every message is on exactly one page."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from sqlalchemy import ColumnElement, Row, select
from sqlalchemy.orm import Session, aliased

from imagestudio.assets.service import asset_out
from imagestudio.generations import billing
from imagestudio.generations.events import first_position, latest_position
from imagestudio.generations.schemas import GenerationOut
from imagestudio.generations.views import generation_out, load_parts
from imagestudio.kit.pagination import MAX_LIMIT, decode_cursor, encode_cursor
from imagestudio.models import FINAL_STATUSES, LANGUAGE_TYPES, Asset, Generation, Message, MessageAttachment, rules
from imagestudio.models.enums import RunStatus
from imagestudio.sessions.schemas import LineageNode, MessageOut, SessionDetail, StepPage
from imagestudio.sessions.service import get_owned_session, session_out

# Deeper chains of iterations continue as new roots: JSON parsers (Python's among them) and
# serializers refuse documents nested a few hundred levels deep.
MAX_LINEAGE_DEPTH = 100
# Steps in full on the first screen: more than a screen of turns, a small part of a long session.
DEFAULT_STEPS = 20

Steps = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Steps in full: the newest ones, with their messages.")]


def step_rows(db: Session, session_id: uuid.UUID) -> Sequence[Row[Any]]:
    """Every step of the session, narrow (no prompts or parameters, its first image that is not deleted),
    in step order (rules.step_order). Each column costs a conversion per step: only what the lineage,
    the paging and the total cost read."""
    first_image = (
        select(Asset.id)
        .where(Asset.generation_id == Generation.id, Asset.kind == "output", Asset.deleted_at.is_(None))
        .order_by(Asset.batch_index)
        .limit(1)
        .scalar_subquery()
    )
    return db.execute(
        select(
            Generation.id,
            Generation.parent_generation_id,
            Generation.status,
            Generation.type,
            Generation.cost,
            rules.step_time().label("at"),
            first_image.label("thumbnail_asset_id"),
        )
        .where(Generation.session_id == session_id)
        .order_by(*rules.step_order())
    ).all()


def lineage(rows: Sequence[Any], max_depth: int = MAX_LINEAGE_DEPTH) -> list[LineageNode]:
    """The session's generations (rows with id, parent_generation_id, status and thumbnail_asset_id) as a
    forest: roots start a line (no parent in this session), children iterate on their parent; steps number
    generations 1, 2, ... in the order given (rules.step_order)."""
    known = {row.id for row in rows}
    nodes: dict[uuid.UUID, LineageNode] = {}
    children: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    roots: list[uuid.UUID] = []
    for step, row in enumerate(rows, start=1):
        parent = row.parent_generation_id
        # Built from the database's own values, so without validating each of hundreds of nodes again.
        nodes[row.id] = LineageNode.model_construct(
            generation_id=row.id,
            step=step,
            children=[],
            parent_generation_id=parent,
            status=RunStatus(row.status),
            thumbnail_asset_id=row.thumbnail_asset_id,
        )
        if parent is not None and parent in known and parent != row.id:
            children[parent].append(row.id)
        else:
            roots.append(row.id)
    forest: list[LineageNode] = []
    # Depth-first with an explicit stack, so no chain is too long to walk.
    stack = [(root, None, 1) for root in reversed(roots)]
    while stack:
        node_id, parent_id, depth = stack.pop()
        node = nodes[node_id]
        if parent_id is None or depth > max_depth:
            forest.append(node)
            depth = 1
        else:
            nodes[parent_id].children.append(node)
        stack.extend((child, node_id, depth + 1) for child in reversed(children.get(node_id, ())))
    return forest


class _Window:
    """One page of steps: which generations, and the span of time whose messages come with them."""

    def __init__(self, db: Session, rows: Sequence[Any], limit: int, cursor: str | None) -> None:
        newest_first = sorted(rows, key=lambda row: (row.at, row.id), reverse=True)
        self.until: datetime | None = None
        if cursor is not None:
            at, generation_id = decode_cursor(cursor)
            self.until = _turn_start(db, generation_id, at)
            newest_first = [row for row in newest_first if (row.at, row.id) < (at, generation_id)]
        self.rows = newest_first[:limit]
        self.next_cursor: str | None = None
        self.since: datetime | None = None
        if len(newest_first) > limit:
            oldest = self.rows[-1]
            self.next_cursor = encode_cursor(oldest.at, oldest.id)
            self.since = _turn_start(db, oldest.id, oldest.at)

    def message_filter(self) -> list[ColumnElement[bool]]:
        conditions = []
        if self.since is not None:
            conditions.append(Message.created_at >= self.since)
        if self.until is not None:
            conditions.append(Message.created_at < self.until)
        return conditions


def _turn_start(db: Session, generation_id: uuid.UUID, at: datetime) -> datetime:
    """When the turn of the step at `at` began: its user message (the one its assistant message answers)
    when it has one, else the step itself. A step deleted since its cursor was handed out has none."""
    question = aliased(Message)
    asked = db.scalar(
        select(question.created_at)
        .join(Message, Message.parent_message_id == question.id)
        .join(Generation, Generation.message_id == Message.id)
        .where(Generation.id == generation_id)
    )
    return min(at, asked) if asked is not None else at


def _page_parts(db: Session, session_id: uuid.UUID, window: _Window) -> tuple[list[MessageOut], list[GenerationOut]]:
    """The window's messages (oldest first) and image generations (in step order), ready to answer."""
    conditions = window.message_filter()
    messages = db.scalars(
        select(Message).where(Message.session_id == session_id, *conditions).order_by(Message.created_at, Message.id)
    ).all()
    attachments: dict[uuid.UUID, list[Asset]] = defaultdict(list)
    if messages:
        for message_id, asset in db.execute(
            select(MessageAttachment.message_id, Asset)
            .join(Asset, Asset.id == MessageAttachment.asset_id)
            .join(Message, Message.id == MessageAttachment.message_id)
            .where(Message.session_id == session_id, *conditions, Asset.deleted_at.is_(None))
            .order_by(MessageAttachment.message_id, MessageAttachment.position)
        ):
            attachments[message_id].append(asset)
    # A message's step is on its page: the step goes by its turn's time. Steps are the images made; a
    # reply's or UI code's job shows through its message (generation_id).
    order = {row.id: index for index, row in enumerate(window.rows)}
    every = sorted(
        db.scalars(select(Generation).where(Generation.id.in_(list(order)))) if order else [],
        key=lambda g: order[g.id],
        reverse=True,
    )
    generations = [g for g in every if g.type not in LANGUAGE_TYPES]
    inputs, outputs = load_parts(db, [g.id for g in generations])
    generation_of_message = {g.message_id: g.id for g in every if g.message_id is not None}
    return (
        [message_out(message, attachments.get(message.id, []), generation_of_message) for message in messages],
        [generation_out(g, inputs.get(g.id, []), outputs.get(g.id, [])) for g in generations],
    )


def session_detail(
    db: Session, owner_id: uuid.UUID, session_id: uuid.UUID, steps: int = DEFAULT_STEPS
) -> SessionDetail:
    # Read first: an event committed after it is past last_event_id, so the stream opened after that
    # id replays it even if the reads below already show its effect (the page takes events twice).
    newest = latest_position(db, owner_id)
    session = get_owned_session(db, owner_id, session_id)
    rows = step_rows(db, session.id)
    window = _Window(db, rows, steps, None)
    messages, generations = _page_parts(db, session.id, window)
    last_event_id = stream_start(db, owner_id, newest, rows)
    images = [row for row in rows if row.type not in LANGUAGE_TYPES]
    return SessionDetail(
        **session_out(session).model_dump(),
        messages=messages,
        generations=generations,
        lineage=lineage(images),
        total_cost=billing.total_of(row.cost for row in images),
        steps_cursor=window.next_cursor,
        last_event_id=last_event_id,
    )


def stream_start(db: Session, owner_id: uuid.UUID, newest: int, rows: Sequence[Any]) -> int:
    """The event the session's stream should start after, for a page drawn from these steps: the newest,
    unless an answer is still being written (a reply, UI code or caption): its text so far is only in
    its delta events, so the stream starts just before that answer's first event and replays them."""
    writing = [row.id for row in rows if row.type in LANGUAGE_TYPES and row.status not in FINAL_STATUSES]
    first = first_position(db, owner_id, writing)
    return newest if first is None else max(0, min(newest, first - 1))


def session_steps(db: Session, owner_id: uuid.UUID, session_id: uuid.UUID, limit: int, cursor: str | None) -> StepPage:
    session = get_owned_session(db, owner_id, session_id)
    rows = step_rows(db, session.id)
    window = _Window(db, rows, limit, cursor)
    messages, generations = _page_parts(db, session.id, window)
    return StepPage(items=generations[::-1], messages=messages[::-1], next_cursor=window.next_cursor)


def message_out(message: Message, attachments: list[Asset], generation_of_message: dict) -> MessageOut:
    return MessageOut(
        id=message.id,
        role=message.role,
        type=message.type,
        content=message.content,
        parent_message_id=message.parent_message_id,
        status=message.status,
        generation_id=generation_of_message.get(message.id),
        model=message.model,
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
        suggested_prompt=(message.extra or {}).get("suggested_prompt"),
        by_ai=(message.extra or {}).get("by_ai"),
        attachments=[asset_out(asset) for asset in attachments],
        created_at=message.created_at,
    )
