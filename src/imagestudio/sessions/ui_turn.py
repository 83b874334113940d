"""Chat turns in mode "ui": the user's message asks for user-interface code; the assistant's answer
(a message of type `code`) is a UI generation's job.

What is revised: `parent_ui_generation_id` when named (any version of the session: branching);
otherwise a turn that shows an image (source_asset_id, or the first attachment) starts a new line
from it ("turn this mockup into HTML"); otherwise the session's latest UI generation is revised;
in a session without one, it starts from the words alone.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imagestudio.container import Container
from imagestudio.generations import limits
from imagestudio.generations.submit import invalid_request
from imagestudio.generations.views import one_generation_out
from imagestudio.models import (
    Asset,
    Generation,
    Message,
    MessageAttachment,
    MessageRole,
    MessageType,
    UiGeneration,
    User,
    rules,
)
from imagestudio.models.types import utcnow
from imagestudio.sessions.chat import last_message_id, owned_assets
from imagestudio.sessions.detail import message_out
from imagestudio.sessions.schemas import ChatTurnCreate, ChatTurnOut
from imagestudio.sessions.service import get_owned_session
from imagestudio.uicode import service as ui
from imagestudio.uicode.views import ui_out

# Image-generation fields that mean nothing to a UI turn; sending them is a mistake worth naming.
_IMAGE_ONLY = ("negative_prompt", "width", "height", "aspect_ratio", "mask_asset_id")


def _refuse_image_fields(body: ChatTurnCreate) -> None:
    for name in _IMAGE_ONLY:
        if getattr(body, name) is not None:
            raise invalid_request(name, "A ui turn writes code, not an image; leave this out.")
    if body.num_images != 1 or body.params.model_fields_set or body.prompt_options.model_fields_set:
        raise invalid_request("mode", "A ui turn takes no image settings (num_images, params, prompt_options).")
    if not body.content.strip() and body.source_asset_id is None and not body.attachment_ids:
        raise invalid_request("content", "Describe the interface, or show an image of it.")


def refuse_ui_fields(db: Session, user: User, session_id: uuid.UUID, body: ChatTurnCreate) -> None:
    """Fields only a ui turn reads, sent with another mode (after the session: 404 comes first)."""
    if body.parent_ui_generation_id is not None:
        get_owned_session(db, user.id, session_id)
        raise invalid_request("parent_ui_generation_id", "Only a turn in mode ui revises a UI generation.")


def post_ui_turn(
    db: Session, *, user: User, session_id: uuid.UUID, body: ChatTurnCreate, container: Container
) -> ChatTurnOut:
    session = get_owned_session(db, user.id, session_id)
    _refuse_image_fields(body)
    attachment_ids = list(dict.fromkeys(body.attachment_ids))
    wanted = attachment_ids + ([body.source_asset_id] if body.source_asset_id else [])
    found = owned_assets(db, user.id, wanted)
    missing = [str(asset_id) for asset_id in wanted if asset_id not in found]
    if missing:
        field = "source_asset_id" if body.source_asset_id and str(body.source_asset_id) in missing else "attachment_ids"
        raise invalid_request(field, f"No such image: {', '.join(missing)}.")
    attachments = [found[asset_id] for asset_id in attachment_ids]
    source = found[body.source_asset_id] if body.source_asset_id else next(iter(attachments), None)
    if body.parent_ui_generation_id is not None:
        parent = ui.owned_ui(db, user.id, session.id, body.parent_ui_generation_id, "parent_ui_generation_id")
    else:
        parent = None if source is not None else ui.latest_ui(db, session.id)
    provider, _ = ui.choose_model(container.language, body.provider, body.model, vision=source is not None)
    limits.check_prompt(container.settings, {"content": body.content})
    limits.consume(db, user, container.settings, 0)

    now = utcnow()
    user_message = _message(session.id, MessageRole.user, MessageType.text, body.content, now, user.id)
    user_message.parent_message_id = _answer_of(db, parent) if parent is not None else last_message_id(db, session.id)
    db.add(user_message)
    db.flush()
    rules.message_added(db, user_message)
    db.add_all(
        MessageAttachment(message_id=user_message.id, asset_id=asset.id, position=position)
        for position, asset in enumerate(attachments)
    )
    _adopt_uploads(db, session.id, [asset.id for asset in attachments] + ([source.id] if source else []))
    answer = _message(session.id, MessageRole.assistant, MessageType.code, "", now + timedelta(microseconds=1))
    answer.parent_message_id = user_message.id
    answer.status = "processing"
    db.add(answer)
    db.flush()
    rules.message_added(db, answer)
    request = ui.UiRequest(
        owner_id=user.id,
        session_id=session.id,
        prompt=body.content,
        user_message_id=user_message.id,
        assistant_message_id=answer.id,
        parent=parent,
        source=source,
        provider=provider,
        model=body.model,
    )
    view = ui.request_ui(db, request, language=container.language, settings=container.settings)
    answer.model = view.job.model
    answer.status = view.job.status
    db.flush()
    db.refresh(answer)
    generation_of = {answer.id: view.job.id}
    return ChatTurnOut(
        user_message=message_out(user_message, attachments, generation_of),
        assistant_message=message_out(answer, [], generation_of),
        generation_id=view.job.id,
        generation=one_generation_out(db, view.job),
        ui_generation_id=view.row.id,
        ui_generation=ui_out(view, container.settings),
    )


def _answer_of(db: Session, parent: UiGeneration) -> uuid.UUID | None:
    """The assistant's message that holds the revised version: the thread goes on from there."""
    return db.scalar(select(Generation.message_id).where(Generation.id == parent.generation_id))


def _message(
    session_id: uuid.UUID,
    role: MessageRole,
    kind: MessageType,
    content: str,
    at: datetime,
    author_id: uuid.UUID | None = None,
) -> Message:
    return Message(
        session_id=session_id,
        author_id=author_id,
        role=role.value,
        type=kind.value,
        content=content,
        created_at=at,
        updated_at=at,
    )


def _adopt_uploads(db: Session, session_id: uuid.UUID, ids: list[uuid.UUID]) -> None:
    """Uploads the turn uses become part of the session (and go when it is deleted)."""
    if ids:
        db.execute(
            update(Asset)
            .where(Asset.id.in_(ids), Asset.kind == "upload", Asset.session_id.is_(None))
            .values(session_id=session_id)
        )
