"""Builders for rows that tests need, going through the same domain rules as the services."""

from __future__ import annotations

import hashlib
import uuid
from itertools import count

from sqlalchemy.orm import Session

from imagestudio.models import Asset, ChatSession, Generation, Message, User, rules
from imagestudio.models.types import utcnow

_serial = count(1)


def make_user(db: Session, email: str | None = None, **values: object) -> User:
    user = User(email=email or f"user{next(_serial)}@example.test", display_name="Test user", **values)
    db.add(user)
    db.flush()
    return user


def make_session(db: Session, owner: User, **values: object) -> ChatSession:
    session = ChatSession(owner_id=owner.id, **values)
    db.add(session)
    db.flush()
    return session


def make_message(
    db: Session, session: ChatSession, role: str = "user", content: str = "a prompt", **values: object
) -> Message:
    message = Message(session_id=session.id, role=role, content=content, created_at=utcnow(), **values)
    db.add(message)
    db.flush()
    rules.message_added(db, message)
    return message


def make_generation(db: Session, owner: User, session: ChatSession | None = None, **values: object) -> Generation:
    fields: dict = {
        "type": "text2img",
        "provider": "builtin",
        "model": "builtin-procedural",
        "prompt": "a lighthouse at dusk",
        "width": 64,
        "height": 64,
        "num_images": 1,
    }
    fields.update(values)
    generation = Generation(
        owner_id=owner.id, session_id=session.id if session else None, created_at=utcnow(), **fields
    )
    db.add(generation)
    db.flush()
    rules.generation_added(db, generation)
    return generation


def make_output(db: Session, generation: Generation, batch_index: int = 0, **values: object) -> Asset:
    digest = hashlib.sha256(f"{generation.id}-{batch_index}".encode()).hexdigest()
    asset = Asset(
        owner_id=generation.owner_id,
        session_id=generation.session_id,
        generation_id=generation.id,
        batch_index=batch_index,
        kind="output",
        storage_key=f"outputs/{generation.id}/{batch_index}.png",
        mime_type="image/png",
        bytes=100,
        width=generation.width,
        height=generation.height,
        sha256=digest,
        created_at=utcnow(),
        **values,
    )
    db.add(asset)
    db.flush()
    rules.output_added(db, asset)
    return asset


def make_upload(db: Session, owner: User, purpose: str = "init", **values: object) -> Asset:
    key = uuid.uuid4().hex
    fields: dict = {
        "kind": "upload",
        "purpose": purpose,
        "storage_key": f"uploads/{owner.id}/{key}.png",
        "mime_type": "image/png",
        "bytes": 100,
        "width": 64,
        "height": 64,
        "sha256": hashlib.sha256(key.encode()).hexdigest(),
    }
    fields.update(values)
    asset = Asset(owner_id=owner.id, **fields)
    db.add(asset)
    db.flush()
    return asset
