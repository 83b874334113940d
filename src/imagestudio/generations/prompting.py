"""The prompt a generation sends, decided by the worker when the request asked a language model to
rewrite it (enhance_prompt). Generations that did not ask have theirs decided when they are made.

When iterating on an image, the language model first describes the source image, so the rewrite
knows what it changes. Whatever the language model does, the generation goes on: a failure leaves
the template prompt and is recorded (prompt_plan.failure), never failing the image.
"""

from __future__ import annotations

import uuid

from PIL import Image
from sqlalchemy import select

from imagestudio.db import Database
from imagestudio.generations import fenced
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.language import CaptionStyle, LanguageError, LanguageRegistry
from imagestudio.language.enhance import PromptMethod, PromptPlan, plan_prompt
from imagestudio.language.registry import BUILTIN
from imagestudio.language.tasks import template_prompt
from imagestudio.models import ChatSession


def method_when_made(prompt: str, options: dict, *, enhance: bool) -> tuple[str | None, str | None]:
    """(prompt_method, sent prompt when it differs) for a generation being made: decided now unless
    a language model was asked for, in which case the worker decides (None)."""
    if enhance:
        return None, None
    templated = template_prompt(prompt, options)
    if templated == prompt.strip():
        return PromptMethod.none.value, None
    return PromptMethod.template.value, templated


def session_context(db: Database, session_id: uuid.UUID | None) -> str | None:
    """The note of the generation's session, which every language-model call for it reads."""
    if session_id is None:
        return None
    with db.reading() as session:
        return session.scalar(select(ChatSession.context).where(ChatSession.id == session_id)) or None


async def decide(
    claimed: ClaimedGeneration, language: LanguageRegistry, source: Image.Image | None, context: str | None = None
) -> PromptPlan:
    if not claimed.enhance_prompt:  # made before the decision moved to creation: the template, no model
        return await plan_prompt(language, claimed.prompt, claimed.prompt_options, enhance=False)
    caption = None
    name = language.default_name
    if source is not None and name != BUILTIN and language.problem(name) is None:
        try:
            caption = (await language.get(name).describe(source, CaptionStyle.short)).text
        except LanguageError:
            caption = None  # the rewrite goes on without knowing the picture
    return await plan_prompt(
        language, claimed.prompt, claimed.prompt_options, enhance=True, caption=caption, context=context
    )


def record(db: Database, claimed: ClaimedGeneration, plan: PromptPlan) -> bool:
    """Store the decision (fenced); on success the claimed generation carries it for the render."""
    sent = plan.sent_prompt if plan.sent_prompt != claimed.prompt.strip() else None
    held = fenced.record_prompt(db, claimed, sent_prompt=sent, method=plan.method.value, plan=plan.as_record())
    if held:
        claimed.enhanced_prompt = sent
        claimed.prompt_method = plan.method.value
    return held
