"""The UI generation job: the engine claims a generation of type `ui` and hands it here.

The job reads its request (the instructions of its line of versions, the code it revises and the
image it was shown), has the built-in composer or a language model write the document, checks and
stores it under the attempt's own key, and records it in the fenced transaction that marks the job
succeeded: the ui_generations row (key, size, hash, usage) and the assistant's message (a title,
the model, the tokens).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from html import unescape

from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imagestudio.db import Database
from imagestudio.generations import kinds
from imagestudio.language.registry import BUILTIN
from imagestudio.models import ChatSession, GenerationType, Message, UiGeneration
from imagestudio.storage.keys import code_key
from imagestudio.uicode.document import Document, clean_document
from imagestudio.uicode.writer import Draft, ask_model, compose_builtin

# Versions read back to rebuild the built-in composer's brief; older instructions are dropped.
MAX_LINE = 50
CODE_TYPE = "text/html; charset=utf-8"
UI_ROWS = UiGeneration.__table__
MESSAGES = Message.__table__


@dataclass(frozen=True)
class Request:
    ui_id: uuid.UUID
    # Oldest first, this version's own prompt last.
    instructions: list[str]
    prompt: str
    # The stored document of the nearest version above it that has one (what it revises).
    previous_key: str | None
    # The session's context: a note the assistant reads for every turn (brand colours, audience).
    context: str = ""


def load_request(db: Database, generation_id: uuid.UUID) -> Request:
    with db.reading() as session:
        row = session.scalars(select(UiGeneration).where(UiGeneration.generation_id == generation_id)).one()
        instructions = [row.prompt]
        previous_key = None
        parent_id = row.parent_id
        while parent_id is not None and len(instructions) < MAX_LINE:
            parent = session.get(UiGeneration, parent_id)
            if parent is None:
                break
            instructions.append(parent.prompt)
            previous_key = previous_key or parent.storage_key
            parent_id = parent.parent_id
        chat = session.get(ChatSession, row.session_id)
        context = chat.context if chat is not None else ""
        return Request(row.id, list(reversed(instructions)), row.prompt, previous_key, context)


class UiJob:
    async def run(self, context: kinds.KindContext) -> kinds.KindResult:
        claimed = context.claimed
        request = await context.run_db(load_request, context.db, claimed.id)
        image = await _image(context)
        if claimed.provider == BUILTIN:
            draft = compose_builtin(request.instructions, image, context=request.context)
        else:
            previous = None
            if request.previous_key is not None:
                previous = (await context.run_io(context.storage.get, request.previous_key)).decode()
            model = context.language.get(claimed.provider)
            draft = await ask_model(
                model,
                model_id=claimed.model,
                prompt=request.prompt,
                image=image,
                previous_code=previous,
                context=request.context,
            )
        document = clean_document(draft.html)
        key = code_key(claimed.id, claimed.attempt)
        context.written.append(key)  # before the upload: a cancel or failure from here on removes it
        await context.run_io(context.storage.put, key, document.data, CODE_TYPE)
        usage = {"prompt_tokens": draft.prompt_tokens, "completion_tokens": draft.completion_tokens}
        return kinds.KindResult(
            served_by=draft.provider,
            model=draft.model,
            usage=usage,
            write=_recorder(request.ui_id, claimed.message_id, key, document, draft),
        )


async def _image(context: kinds.KindContext) -> Image.Image | None:
    if not context.claimed.inputs:
        return None
    return await context.load_image(context.claimed.inputs[0].storage_key)


def _recorder(ui_id: uuid.UUID, message_id: uuid.UUID | None, key: str, document: Document, draft: Draft):
    title = draft.title or _title_in(document.html)

    def write(session: Session) -> None:
        session.execute(
            update(UI_ROWS)
            .where(UI_ROWS.c.id == ui_id)
            .values(
                storage_key=key,
                code_bytes=len(document.data),
                code_sha256=document.sha256,
                removed_references=document.removed_references,
                title=title,
                by_ai=draft.by_ai,
                prompt_tokens=draft.prompt_tokens,
                completion_tokens=draft.completion_tokens,
            )
        )
        if message_id is not None:
            session.execute(
                update(MESSAGES)
                .where(MESSAGES.c.id == message_id)
                .values(
                    content=title or "",
                    model=draft.model,
                    prompt_tokens=draft.prompt_tokens,
                    completion_tokens=draft.completion_tokens,
                )
            )

    return write


def _title_in(html: str) -> str | None:
    found = re.search(r"<title[^>]*>(.*?)</title>", html, re.IGNORECASE | re.DOTALL)
    if not found:
        return None
    return " ".join(unescape(found.group(1)).split())[:200] or None


def install() -> None:
    """Let this process's workers run UI generations (the API and worker entry points call it)."""
    kinds.register(GenerationType.ui.value, UiJob())
