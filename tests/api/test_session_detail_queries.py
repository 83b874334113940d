"""Session detail costs a fixed number of SQL statements whatever the session's size (its newest steps in
full, the lineage of all), and a long chain of iterations comes out as a lineage any JSON parser reads
(continued as new roots past the nesting limit)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event, insert

from imagestudio.db import Database
from imagestudio.models import Asset, ChatSession, Generation, GenerationInput, Message, MessageAttachment
from imagestudio.models.types import new_id, utcnow
from imagestudio.sessions.detail import DEFAULT_STEPS, MAX_LINEAGE_DEPTH, session_detail
from tests.api.helpers import API, create_user, log_in

MAX_STATEMENTS = 9


def _insert_chain(db: Database, owner_id: uuid.UUID, length: int) -> uuid.UUID:
    start = utcnow() - timedelta(days=1)
    session_id = new_id()
    upload_id = new_id()
    messages, generations, outputs, inputs, attachments = [], [], [], [], []
    previous_generation = previous_output = None
    for step in range(length):
        at = start + timedelta(seconds=step)
        user_message, assistant_message, generation_id, output_id = new_id(), new_id(), new_id(), new_id()
        for message_id, role in ((user_message, "user"), (assistant_message, "assistant")):
            messages.append(
                {"id": message_id, "session_id": session_id, "role": role, "content": f"step {step}",
                 "status": "succeeded" if role == "assistant" else None, "created_at": at, "updated_at": at}
            )  # fmt: skip
        attachments.append({"message_id": user_message, "asset_id": upload_id, "position": 0})
        generations.append(
            {"id": generation_id, "owner_id": owner_id, "session_id": session_id, "message_id": assistant_message,
             "parent_generation_id": previous_generation, "type": "img2img" if step else "text2img",
             "status": "succeeded", "provider": "builtin", "model": "builtin-procedural", "prompt": f"step {step}",
             "width": 64, "height": 64, "num_images": 1, "created_at": at, "updated_at": at}
        )  # fmt: skip
        outputs.append(
            {"id": output_id, "owner_id": owner_id, "session_id": session_id, "generation_id": generation_id,
             "batch_index": 0, "kind": "output", "storage_key": f"outputs/{generation_id}/0.png",
             "thumbnail_key": f"thumbnails/{generation_id}/0.webp", "mime_type": "image/png", "bytes": 10,
             "width": 64, "height": 64, "sha256": generation_id.hex * 2, "created_at": at, "updated_at": at}
        )  # fmt: skip
        if previous_output is not None:
            inputs.append({"generation_id": generation_id, "asset_id": previous_output, "role": "init", "position": 0})
        previous_generation, previous_output = generation_id, output_id
    with db.writing() as session:
        session.add(ChatSession(id=session_id, owner_id=owner_id, created_at=start, updated_at=start))
        session.flush()
        session.add(
            Asset(id=upload_id, owner_id=owner_id, session_id=session_id, kind="upload", purpose="reference",
                  storage_key=f"uploads/{upload_id.hex}.png", mime_type="image/png", bytes=10, width=8, height=8,
                  sha256="0" * 64)
        )  # fmt: skip
        session.flush()
        for model, rows in (
            (Message, messages),
            (MessageAttachment, attachments),
            (Generation, generations),
            (Asset, outputs),
            (GenerationInput, inputs),
        ):
            if rows:
                session.execute(insert(model), rows)
    return session_id


@pytest.mark.parametrize("length", [10, 500])
def test_session_detail_costs_a_fixed_number_of_statements(db, container, app, length) -> None:
    user = create_user(container)
    session_id = _insert_chain(db, user.id, length)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        # SQLite's transactions open with an explicit BEGIN statement; that is not a query.
        if not statement.startswith("BEGIN"):
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        with db.reading() as session:
            detail = session_detail(session, user.id, session_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    print(f"\nsession detail, {length} generations, {db.dialect}: {len(statements)} statements")
    assert len(statements) <= MAX_STATEMENTS, statements
    shown = min(length, DEFAULT_STEPS)
    assert len(detail.generations) == shown and len(detail.messages) == 2 * shown
    assert (detail.steps_cursor is None) == (length <= DEFAULT_STEPS)
    assert all(len(g.outputs) == 1 for g in detail.generations)
    assert sum(len(g.inputs) for g in detail.generations) == (length - 1 if length == shown else shown)
    assert all(len(m.attachments) == 1 for m in detail.messages if m.role == "user")

    # Through the API: one chain, cut into pieces of at most MAX_LINEAGE_DEPTH levels.
    client = log_in(app, user.email)
    answer = client.get(f"{API}/sessions/{session_id}")
    assert answer.status_code == 200, answer.text[:500]
    roots = answer.json()["lineage"]
    assert len(roots) == -(-length // MAX_LINEAGE_DEPTH)
    step, previous = 0, None
    for root in roots:
        assert root["parent_generation_id"] == previous
        node = [root]
        while node:
            [only] = node
            step += 1
            assert only["step"] == step
            assert only["status"] == "succeeded" and only["thumbnail_asset_id"] is not None
            previous, node = only["generation_id"], only["children"]
    assert step == length
