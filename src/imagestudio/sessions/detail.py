"""A session with everything the studio page shows, in six queries whatever its size: the session,
its messages, their attachments, its generations, their inputs and their outputs.

The lineage (which generation iterates on which) is a tree as deep as the longest chain of
iterations; JSON serializers refuse nesting a few hundred levels deep, so it is written iteratively.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.assets.service import asset_out
from imagestudio.generations.views import generation_out, load_parts
from imagestudio.models import Asset, Generation, Message, MessageAttachment
from imagestudio.sessions.schemas import MessageOut, SessionDetail
from imagestudio.sessions.service import get_owned_session, session_out


@dataclass
class Lineage:
    """The session's generations as a forest: roots start a line (no parent in this session), children
    iterate on their parent. Steps number generations 1, 2, ... in the order they were made."""

    roots: list[uuid.UUID] = field(default_factory=list)
    children: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=dict)
    steps: dict[uuid.UUID, int] = field(default_factory=dict)

    @classmethod
    def of(cls, generations: list[Generation]) -> Lineage:
        lineage = cls()
        known = {generation.id for generation in generations}
        children: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for step, generation in enumerate(generations, start=1):
            lineage.steps[generation.id] = step
            parent = generation.parent_generation_id
            if parent is not None and parent in known and parent != generation.id:
                children[parent].append(generation.id)
            else:
                lineage.roots.append(generation.id)
        lineage.children = dict(children)
        return lineage

    def to_json(self) -> str:
        """The forest as JSON LineageNode objects, written with an explicit stack (no depth limit)."""
        parts = ["["]
        stack = [iter(self.roots)]
        first = [True]
        while stack:
            node = next(stack[-1], None)
            if node is None:
                stack.pop()
                first.pop()
                parts.append("]}" if stack else "]")
                continue
            if not first[-1]:
                parts.append(",")
            first[-1] = False
            parts.append(f'{{"generation_id":"{node}","step":{self.steps[node]},"children":[')
            stack.append(iter(self.children.get(node, ())))
            first.append(True)
        return "".join(parts)


@dataclass
class SessionDetailView:
    """SessionDetail without its lineage (kept aside in `lineage`), and the JSON of the whole."""

    detail: SessionDetail
    lineage: Lineage

    def to_json(self) -> str:
        head = self.detail.model_dump_json(exclude={"lineage"})
        return f'{head[:-1]},"lineage":{self.lineage.to_json()}}}'


def session_detail(db: Session, owner_id: uuid.UUID, session_id: uuid.UUID) -> SessionDetailView:
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
    generations = list(
        db.scalars(
            select(Generation).where(Generation.session_id == session.id).order_by(Generation.created_at, Generation.id)
        )
    )
    inputs, outputs = load_parts(db, select(Generation.id).where(Generation.session_id == session.id))
    generation_of_message = {g.message_id: g.id for g in generations if g.message_id is not None}
    detail = SessionDetail(
        **session_out(session).model_dump(),
        messages=[message_out(message, attachments.get(message.id, []), generation_of_message) for message in messages],
        generations=[generation_out(g, inputs.get(g.id, []), outputs.get(g.id, [])) for g in generations],
        lineage=[],
    )
    return SessionDetailView(detail=detail, lineage=Lineage.of(generations))


def message_out(message: Message, attachments: list[Asset], generation_of_message: dict) -> MessageOut:
    return MessageOut(
        id=message.id,
        role=message.role,
        content=message.content,
        parent_message_id=message.parent_message_id,
        status=message.status,
        generation_id=generation_of_message.get(message.id),
        attachments=[asset_out(asset) for asset in attachments],
        created_at=message.created_at,
    )
