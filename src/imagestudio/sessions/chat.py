"""Chat turns: a user message becomes an assistant message and the generation that answers it.

How a turn's mode picks the generation:
- iterate (default): img2img of the source image (source_asset_id, else an attachment uploaded as
  `init`, else the session's latest output); with a mask (mask_asset_id or a `mask` attachment) an
  inpaint of it. With no source at all (a new session) it falls back to text2img.
- fresh: text2img, whatever came before.
- upscale / variation: of the source image, which must exist.
- reply: no image; the assistant answers the question in words (a reply job, generations/replies.py).
Attachments uploaded as `reference` become reference images; every attachment shows in the message.
The parent generation is the one that made the source image, so naming any earlier output branches.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imagestudio.config import Settings
from imagestudio.generations import limits, replies
from imagestudio.generations.service import create_generation
from imagestudio.generations.spec import TYPES_TAKING_REFERENCES
from imagestudio.generations.submit import admit, build_spec, engine_errors, invalid_request, request_defaults
from imagestudio.generations.views import one_generation_out
from imagestudio.kit.pagination import keyset_page
from imagestudio.language import LanguageRegistry
from imagestudio.models import (
    Asset,
    ChatSession,
    Generation,
    InputPurpose,
    Message,
    MessageAttachment,
    MessageRole,
    MessageType,
    User,
    rules,
)
from imagestudio.models import GenerationType as Type
from imagestudio.models.types import utcnow
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.sessions.detail import message_out
from imagestudio.sessions.schemas import ChatTurnCreate, ChatTurnOut, MessageOut, TurnMode
from imagestudio.sessions.service import get_owned_session

# The engine's field names as a chat turn calls them.
TURN_FIELDS = {"type": "mode", "prompt": "content", "reference_asset_ids": "attachment_ids"}


@dataclass
class Plan:
    type: Type
    source: Asset | None = None
    mask_id: uuid.UUID | None = None
    references: list[uuid.UUID] = field(default_factory=list)

    @property
    def parent_generation_id(self) -> uuid.UUID | None:
        return self.source.generation_id if self.source is not None else None


def owned_assets(db: Session, owner_id: uuid.UUID, ids: list[uuid.UUID]) -> dict[uuid.UUID, Asset]:
    if not ids:
        return {}
    rows = db.scalars(select(Asset).where(Asset.id.in_(ids), Asset.owner_id == owner_id, Asset.deleted_at.is_(None)))
    return {asset.id: asset for asset in rows}


def _latest_output(db: Session, session_id: uuid.UUID) -> Asset | None:
    return db.scalars(
        select(Asset)
        .where(Asset.session_id == session_id, Asset.kind == "output", Asset.deleted_at.is_(None))
        .order_by(Asset.created_at.desc(), Asset.batch_index)
        .limit(1)
    ).first()


def plan_turn(db: Session, session: ChatSession, body: ChatTurnCreate, attachments: list[Asset]) -> Plan:
    by_purpose: dict[str, list[Asset]] = defaultdict(list)
    for asset in attachments:
        by_purpose[asset.purpose or ""].append(asset)
    references = [asset.id for asset in by_purpose[InputPurpose.reference.value]]
    if body.mode == TurnMode.fresh:
        for name in ("source_asset_id", "mask_asset_id"):
            if getattr(body, name) is not None:
                raise invalid_request(name, "A fresh turn starts from nothing; use mode iterate to work on an image.")
        return Plan(Type.text2img, references=references)

    mask_id = body.mask_asset_id or next((a.id for a in by_purpose[InputPurpose.mask.value]), None)
    if mask_id is not None and body.mode != TurnMode.iterate:
        raise invalid_request("mask_asset_id", f"A {body.mode} turn takes no mask; masks go with mode iterate.")
    source: Asset | None
    if body.source_asset_id is not None:
        source = owned_assets(db, session.owner_id, [body.source_asset_id]).get(body.source_asset_id)
        if source is None:
            raise invalid_request("source_asset_id", f"No such image: {body.source_asset_id}.")
    else:
        source = next(iter(by_purpose[InputPurpose.init.value]), None) or _latest_output(db, session.id)
    if source is None:
        if body.mode in (TurnMode.upscale, TurnMode.variation):
            raise invalid_request("source_asset_id", f"A {body.mode} needs an image: name one, or make one first.")
        if mask_id is not None:
            raise invalid_request("mask_asset_id", "A mask needs an image to paint into; name it in source_asset_id.")
        return Plan(Type.text2img, references=references)
    kind = {
        TurnMode.iterate: Type.inpaint if mask_id is not None else Type.img2img,
        TurnMode.upscale: Type.upscale,
        TurnMode.variation: Type.variation,
    }[body.mode]
    return Plan(kind, source=source, mask_id=mask_id, references=references if kind in TYPES_TAKING_REFERENCES else [])


def _parent_message_id(db: Session, session_id: uuid.UUID, parent_generation_id: uuid.UUID | None) -> uuid.UUID | None:
    """The message a turn answers: the assistant message of the generation it iterates on, else the
    session's last message."""
    if parent_generation_id is not None:
        message_id = db.scalar(
            select(Generation.message_id).where(
                Generation.id == parent_generation_id, Generation.session_id == session_id
            )
        )
        if message_id is not None:
            return message_id
    return last_message_id(db, session_id)


def last_message_id(db: Session, session_id: uuid.UUID) -> uuid.UUID | None:
    """The session's newest message, which a new turn answers unless it names another."""
    return db.scalar(
        select(Message.id)
        .where(Message.session_id == session_id)
        .order_by(Message.created_at.desc(), Message.id.desc())
        .limit(1)
    )


def post_turn(
    db: Session,
    *,
    user: User,
    session_id: uuid.UUID,
    body: ChatTurnCreate,
    registry: ProviderRegistry,
    settings: Settings,
    language: LanguageRegistry | None = None,
) -> ChatTurnOut:
    """The user's message (with attachments), the assistant's answer and its queued generation, together."""
    session = get_owned_session(db, user.id, session_id)
    attachment_ids = list(dict.fromkeys(body.attachment_ids))
    found = owned_assets(db, user.id, attachment_ids)
    missing = [str(asset_id) for asset_id in attachment_ids if asset_id not in found]
    if missing:
        raise invalid_request("attachment_ids", f"No such image: {', '.join(missing)}.")
    attachments = [found[asset_id] for asset_id in attachment_ids]
    if body.mode == TurnMode.reply:
        return post_reply(
            db, user=user, session=session, body=body, attachments=attachments, language=language, settings=settings
        )
    plan = plan_turn(db, session, body, attachments)
    spec = build_spec(
        body,
        type=plan.type,
        prompt=body.content,
        defaults=request_defaults(db, user.id, session.id),
        registry=registry,
        source_asset_id=plan.source.id if plan.source else None,
        mask_asset_id=plan.mask_id,
        reference_asset_ids=plan.references,
        parent_generation_id=plan.parent_generation_id,
    )
    admit(db, user, settings, spec, prompt_field="content")
    user_message, assistant_message = _add_messages(
        db,
        user=user,
        session=session,
        content=body.content,
        attachments=attachments,
        used={i for i in (spec.source_asset_id, spec.mask_asset_id) if i},
        parent_generation_id=plan.parent_generation_id,
        answer_type=MessageType.image,
    )
    with engine_errors(TURN_FIELDS):
        generation = create_generation(
            db,
            owner_id=user.id,
            spec=spec,
            registry=registry,
            settings=settings,
            session_id=session.id,
            message_id=assistant_message.id,
        )
    return _turn_out(db, user_message, assistant_message, attachments, generation)


# Fields that shape an image: a reply makes none, so a reply turn that sets one is refused.
_IMAGE_FIELDS = (
    "mask_asset_id",
    "negative_prompt",
    "num_images",
    "width",
    "height",
    "aspect_ratio",
    "params",
    "prompt_options",
    "enhance_prompt",
)


def post_reply(
    db: Session,
    *,
    user: User,
    session: ChatSession,
    body: ChatTurnCreate,
    attachments: list[Asset],
    language: LanguageRegistry | None,
    settings: Settings,
) -> ChatTurnOut:
    """A question about the session, answered in words by a reply job (mode reply). The image it is
    about, if any, is source_asset_id or else the first attachment; provider and model name the
    language model (default: the configured one)."""
    for name in _IMAGE_FIELDS:
        if name in body.model_fields_set:
            raise invalid_request(name, f"A reply answers in words and makes no image; {name} does not apply.")
    question = body.content.strip()
    if not question:
        raise invalid_request("content", "Ask a question: a reply answers it in words.")
    image = next(iter(attachments), None)
    if body.source_asset_id is not None:
        image = owned_assets(db, user.id, [body.source_asset_id]).get(body.source_asset_id)
        if image is None:
            raise invalid_request("source_asset_id", f"No such image: {body.source_asset_id}.")
    choice = replies.choose_model(
        language or LanguageRegistry(), body.provider, body.model, vision=image is not None, invalid=invalid_request
    )
    limits.consume(db, user, settings, 0)  # a reply counts against the request rate, not the image quota
    user_message, assistant_message = _add_messages(
        db,
        user=user,
        session=session,
        content=question,
        attachments=attachments,
        used={image.id} if image is not None else set(),
        parent_generation_id=image.generation_id if image is not None else None,
        answer_type=MessageType.text,
    )
    generation = replies.queue_reply(
        db,
        owner_id=user.id,
        session_id=session.id,
        message_id=assistant_message.id,
        question=question,
        image=image,
        choice=choice,
        settings=settings,
    )
    return _turn_out(db, user_message, assistant_message, attachments, generation)


def _add_messages(
    db: Session,
    *,
    user: User,
    session: ChatSession,
    content: str,
    attachments: list[Asset],
    used: set[uuid.UUID],
    parent_generation_id: uuid.UUID | None,
    answer_type: MessageType,
) -> tuple[Message, Message]:
    """The user's message with its attachments and the assistant's (empty until its job answers)."""
    now = utcnow()
    user_message = Message(
        session_id=session.id,
        author_id=user.id,
        role=MessageRole.user.value,
        type=MessageType.text.value,
        content=content,
        parent_message_id=_parent_message_id(db, session.id, parent_generation_id),
        created_at=now,
        updated_at=now,
    )
    db.add(user_message)
    db.flush()
    rules.message_added(db, user_message)
    if attachments:
        db.add_all(
            MessageAttachment(message_id=user_message.id, asset_id=asset.id, position=position)
            for position, asset in enumerate(attachments)
        )
    # Uploads the turn uses become part of the session (and go when it is deleted).
    used = {asset.id for asset in attachments} | used
    if used:
        db.execute(
            update(Asset)
            .where(Asset.id.in_(used), Asset.kind == "upload", Asset.session_id.is_(None))
            .values(session_id=session.id)
        )
    answered_at = now + timedelta(microseconds=1)  # after the user's message, in any order by time
    assistant_message = Message(
        session_id=session.id,
        role=MessageRole.assistant.value,
        type=answer_type.value,
        content="",
        parent_message_id=user_message.id,
        status="processing",
        created_at=answered_at,
        updated_at=answered_at,
    )
    db.add(assistant_message)
    db.flush()
    rules.message_added(db, assistant_message)
    return user_message, assistant_message


def _turn_out(
    db: Session, user_message: Message, assistant_message: Message, attachments: list[Asset], generation: Generation
) -> ChatTurnOut:
    assistant_message.model = generation.model
    assistant_message.status = generation.status
    db.flush()
    db.refresh(assistant_message)
    generation_of = {assistant_message.id: generation.id}
    return ChatTurnOut(
        user_message=message_out(user_message, attachments, generation_of),
        assistant_message=message_out(assistant_message, [], generation_of),
        generation_id=generation.id,
        generation=one_generation_out(db, generation),
    )


def list_messages(
    db: Session, owner_id: uuid.UUID, session_id: uuid.UUID, limit: int, cursor: str | None
) -> tuple[list[MessageOut], str | None]:
    """A session's messages, newest first, with attachments and the generation each assistant turn made."""
    session = get_owned_session(db, owner_id, session_id)
    rows, next_cursor = keyset_page(
        db, select(Message).where(Message.session_id == session.id), Message.created_at, Message.id, limit, cursor
    )
    ids = [message.id for message in rows]
    attachments: dict[uuid.UUID, list[Asset]] = defaultdict(list)
    generation_of: dict[uuid.UUID, uuid.UUID] = {}
    if ids:
        for message_id, asset in db.execute(
            select(MessageAttachment.message_id, Asset)
            .join(Asset, Asset.id == MessageAttachment.asset_id)
            .where(MessageAttachment.message_id.in_(ids), Asset.deleted_at.is_(None))
            .order_by(MessageAttachment.position)
        ):
            attachments[message_id].append(asset)
        for generation_id, message_id in db.execute(
            select(Generation.id, Generation.message_id).where(Generation.message_id.in_(ids))
        ):
            generation_of[message_id] = generation_id
    return [message_out(m, attachments.get(m.id, []), generation_of) for m in rows], next_cursor
