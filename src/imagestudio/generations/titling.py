"""A session's title written by the language model from its first turn.

The first prompt already names the session (models.rules.derive_title); when a language model is
configured, the worker running the session's first generation asks it for a short title and puts
it in place of that one, unless the user renamed the session meanwhile. A failure keeps the
prompt's title: nothing else waits on this.
"""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select, update

from imagestudio.db import Database
from imagestudio.generations.prompting import session_context
from imagestudio.language import LanguageError, LanguageRegistry
from imagestudio.language.registry import BUILTIN
from imagestudio.models import ChatSession, Generation
from imagestudio.models.rules import derive_title

log = logging.getLogger(__name__)


def _first_of_its_session(db: Database, generation_id: uuid.UUID, session_id: uuid.UUID) -> bool:
    with db.reading() as session:
        # Ids are time-ordered (UUIDv7): the smallest is the first.
        first = session.scalar(
            select(Generation.id).where(Generation.session_id == session_id).order_by(Generation.id).limit(1)
        )
        return first == generation_id


def _replace_title(db: Database, session_id: uuid.UUID, derived: str, title: str) -> bool:
    with db.writing() as session:
        result = session.execute(
            update(ChatSession)
            .where(ChatSession.id == session_id, ChatSession.title_is_custom.is_(False), ChatSession.title == derived)
            .values(title=title)
        )
        return bool(result.rowcount)


async def title_session(
    db_call, db: Database, language: LanguageRegistry, *, generation_id: uuid.UUID, session_id: uuid.UUID, prompt: str
) -> str | None:
    """Ask for a title if this is the session's first generation; the title set, or None.

    db_call runs a blocking database function off the event loop (the worker's database pool)."""
    name = language.default_name
    model = language.get(name)
    if name == BUILTIN or language.problem(name) is not None or not prompt.strip():
        return None
    if not await db_call(_first_of_its_session, db, generation_id, session_id):
        return None
    context = await db_call(session_context, db, session_id)
    try:
        result = await model.title(prompt, context=context)
    except LanguageError as error:
        log.info("session %s keeps its first prompt as title: %s", session_id, error.message)
        return None
    if not await db_call(_replace_title, db, session_id, derive_title(prompt), result.text):
        return None
    return result.text
