"""A session with everything the studio page shows, in six queries whatever its size: the session,
its messages, their attachments, its generations, their inputs and their outputs."""

from __future__ import annotations

import uuid
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.assets.service import asset_out
from imagestudio.generations import billing
from imagestudio.generations.views import generation_out, load_parts
from imagestudio.models import LANGUAGE_TYPES, Asset, Generation, Message, MessageAttachment, rules
from imagestudio.sessions.schemas import LineageNode, MessageOut, SessionDetail
from imagestudio.sessions.service import get_owned_session, session_out

# Deeper chains of iterations continue as new roots: JSON parsers (Python's among them) and
# serializers refuse documents nested a few hundred levels deep.
MAX_LINEAGE_DEPTH = 100


def lineage(generations: list[Generation], max_depth: int = MAX_LINEAGE_DEPTH) -> list[LineageNode]:
    """The session's generations as a forest: roots start a line (no parent in this session), children
    iterate on their parent; steps number generations 1, 2, ... in the order given (rules.step_order)."""
    known = {generation.id for generation in generations}
    nodes: dict[uuid.UUID, LineageNode] = {}
    children: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    roots: list[uuid.UUID] = []
    for step, generation in enumerate(generations, start=1):
        parent = generation.parent_generation_id
        nodes[generation.id] = LineageNode(
            generation_id=generation.id, step=step, children=[], parent_generation_id=parent
        )
        if parent is not None and parent in known and parent != generation.id:
            children[parent].append(generation.id)
        else:
            roots.append(generation.id)
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


def session_detail(db: Session, owner_id: uuid.UUID, session_id: uuid.UUID) -> SessionDetail:
    session = get_owned_session(db, owner_id, session_id)
    messages = db.scalars(
        select(Message).where(Message.session_id == session.id).order_by(Message.created_at, Message.id)
    ).all()
    attachments: dict[uuid.UUID, list[Asset]] = defaultdict(list)
    for message_id, asset in db.execute(
        select(MessageAttachment.message_id, Asset)
        .join(Asset, Asset.id == MessageAttachment.asset_id)
        .join(Message, Message.id == MessageAttachment.message_id)
        .where(Message.session_id == session.id, Asset.deleted_at.is_(None))
        .order_by(MessageAttachment.message_id, MessageAttachment.position)
    ):
        attachments[message_id].append(asset)
    every = list(
        db.scalars(
            select(Generation).where(Generation.session_id == session.id).order_by(*rules.step_order())
        )
    )
    # Steps are the images made; a reply's or UI code's job shows through its message (generation_id).
    generations = [g for g in every if g.type not in LANGUAGE_TYPES]
    inputs, outputs = load_parts(db, select(Generation.id).where(Generation.session_id == session.id))
    generation_of_message = {g.message_id: g.id for g in every if g.message_id is not None}
    return SessionDetail(
        **session_out(session).model_dump(),
        messages=[message_out(message, attachments.get(message.id, []), generation_of_message) for message in messages],
        generations=[generation_out(g, inputs.get(g.id, []), outputs.get(g.id, [])) for g in generations],
        lineage=lineage(generations),
        total_cost=billing.total_of(g.cost for g in generations),
    )


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
