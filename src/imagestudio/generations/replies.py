"""Replies: a chat turn's question about its session, answered in words by a language model.

A reply is a generation of type `reply` linked to the assistant message it writes, so it is
claimed, leased, retried, reaped, cancelled and streamed like any other job. While the model
answers, the worker appends `delta` events (pieces of the text, each with its offset in this
attempt's answer) to the generation's log, which the session's event stream carries live. When
it succeeds, the message's text, model and tokens are written in the same fenced transaction.

The model is given the session's facts (each step's prompt, the prompt sent, size, provider,
status and any caption) and asked to end with a fenced ```prompt block when it suggests one;
that block is taken out of the answer and offered as the message's `suggested_prompt`. Without a
language model, the built-in answer reports those facts and says that no model is configured.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations import fenced
from imagestudio.generations.enqueue import (
    LanguageJob,
    add_language_job,
    announce_queued,
    language_model,
    language_provider,
)
from imagestudio.generations.fenced import Outcome
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.kit.errors import ApiError, Invalid
from imagestudio.language import ChatMessage, ChatRequest, ChatResult, LanguageRegistry, Usage
from imagestudio.language.registry import BUILTIN
from imagestudio.models import (
    LANGUAGE_TYPES,
    Asset,
    Caption,
    ChatSession,
    Generation,
    Message,
    MessageRole,
    MessageType,
    RunStatus,
)
from imagestudio.models.types import utcnow

MESSAGES = Message.__table__
# The built-in answer's model name: it reports the session's facts, it is not a model.
FACTS_MODEL = "session-facts"
REPLY_MAX_TOKENS = 600
# Earlier questions and answers of the session the model sees, newest last.
HISTORY_TURNS = 6
# Steps described to the model; a longer session shows its first and latest ones.
MAX_STEPS = 40
SUGGESTED_PROMPT_MAX = 4000

REPLY_SYSTEM = (
    "You are the assistant of an image studio. The user asks about their session: the images made so "
    "far, step by step, with the prompts that were sent. Answer the question in plain text, briefly "
    "(at most 150 words). If a new or changed prompt would help, end your answer with exactly one "
    "fenced block marked prompt that holds only that prompt, like this:\n```prompt\n<the prompt>\n```"
)
NO_MODEL_NOTE = (
    "No language model is configured, so this is not an AI answer: these are the session's recorded facts. "
    "Set IMAGESTUDIO_LANGUAGE_URL and IMAGESTUDIO_LANGUAGE_MODEL to have a language model answer questions."
)
_PROMPT_BLOCK = re.compile(r"```[ \t]*prompt[ \t]*\n(?P<prompt>.*?)\n?```[ \t]*$", re.DOTALL | re.IGNORECASE)
_PROMPT_LINE = re.compile(r"^(?:suggested )?prompt:[ \t]*(?P<prompt>\S.*)$", re.IGNORECASE | re.MULTILINE)
_STEP_NAMED = re.compile(r"\bstep\s+(\d{1,4})\b", re.IGNORECASE)
_TYPE_WORDS = {
    "text2img": "text to image",
    "img2img": "image to image",
    "inpaint": "inpaint",
    "upscale": "upscale",
    "variation": "variation",
}


@dataclass(frozen=True)
class ReplyChoice:
    provider: str
    model: str


def choose_model(
    language: LanguageRegistry,
    provider: str | None,
    model: str | None,
    *,
    vision: bool,
    invalid: Callable[[str, str], ApiError] = Invalid,
) -> ReplyChoice:
    """The language provider and model a reply goes to; `invalid(field, message)` when it cannot be used."""
    name = language_provider(language, provider, invalid=invalid)
    if name == BUILTIN:
        return ReplyChoice(name, FACTS_MODEL)
    return ReplyChoice(name, language_model(language, name, model, vision=vision, invalid=invalid))


def queue_reply(
    db: Session,
    *,
    owner_id: uuid.UUID,
    session_id: uuid.UUID,
    message_id: uuid.UUID,
    question: str,
    image: Asset | None,
    choice: ReplyChoice,
    settings: Settings,
) -> Generation:
    """Queue the job answering `question` in the assistant message `message_id` (flushes only)."""
    job = LanguageJob(
        owner_id=owner_id,
        session_id=session_id,
        message_id=message_id,
        type="reply",
        provider=choice.provider,
        model=choice.model,
        prompt=question,
        # A reply makes no image: its size is the picture it reads, if any.
        width=image.width if image is not None else 1,
        height=image.height if image is not None else 1,
    )
    generation = add_language_job(db, job, settings=settings, source=image)
    announce_queued(db, generation)
    return generation


# ---- what the model is told ----


@dataclass(frozen=True)
class StepFacts:
    step: int
    type: str
    status: str
    prompt: str
    sent_prompt: str | None
    width: int
    height: int
    provider: str
    model: str
    outputs: int
    parent_step: int | None
    caption: str | None

    def line(self) -> str:
        words = [f"Step {self.step}: {_TYPE_WORDS.get(self.type, self.type)}"]
        if self.parent_step is not None:
            words.append(f"from step {self.parent_step}")
        words.append(f"{self.width}x{self.height}, {self.provider}/{self.model}, {self.status}")
        if self.status == RunStatus.succeeded:
            words.append(f"{self.outputs} image{'s' if self.outputs != 1 else ''}")
        text = ", ".join(words) + (f'. Prompt: "{self.prompt}"' if self.prompt else ". No prompt.")
        if self.sent_prompt:
            text += f' Sent as: "{self.sent_prompt}"'
        if self.caption:
            text += f" Described as: {self.caption}"
        return text


@dataclass
class ReplyContext:
    title: str
    steps: list[StepFacts] = field(default_factory=list)
    # The session's note that every language-model call of it reads (audience, brand, tone).
    note: str = ""
    # Earlier questions and answers, oldest first: (role, text).
    history: list[tuple[str, str]] = field(default_factory=list)

    def facts(self) -> str:
        note = [f"The user's note for this session: {self.note.strip()}"] if self.note.strip() else []
        if not self.steps:
            return "\n".join([f'Session "{self.title}": no images yet.', *note])
        shown = self.steps if len(self.steps) <= MAX_STEPS else [*self.steps[:5], *self.steps[-(MAX_STEPS - 5) :]]
        lines = [f'Session "{self.title}", {len(self.steps)} steps:', *(step.line() for step in shown)]
        return "\n".join([*lines, *note])


def load_context(db: Database, claimed: ClaimedGeneration) -> ReplyContext:
    """The session as the reply's model sees it: its steps in order and the earlier exchanges."""
    with db.reading() as session:
        found = session.execute(
            select(ChatSession.title, ChatSession.context).where(ChatSession.id == claimed.session_id)
        ).first()
        title, note = (found.title, found.context or "") if found is not None else ("", "")
        generations = session.scalars(
            select(Generation)
            .where(Generation.session_id == claimed.session_id, Generation.type.not_in(list(LANGUAGE_TYPES)))
            .order_by(Generation.created_at, Generation.id)
        ).all()
        outputs, captions = _outputs_and_captions(session, [generation.id for generation in generations])
        steps = {generation.id: number for number, generation in enumerate(generations, start=1)}
        facts = [
            StepFacts(
                step=steps[generation.id],
                type=generation.type,
                status=generation.status,
                prompt=generation.prompt,
                sent_prompt=generation.enhanced_prompt,
                width=generation.width,
                height=generation.height,
                provider=generation.served_by or generation.provider,
                model=generation.model,
                outputs=outputs.get(generation.id, 0),
                parent_step=steps.get(generation.parent_generation_id) if generation.parent_generation_id else None,
                caption=captions.get(generation.id),
            )
            for generation in generations
        ]
        history = _history(session, claimed)
    return ReplyContext(title=title, steps=facts, history=history, note=note)


def _outputs_and_captions(
    session: Session, generation_ids: Sequence[uuid.UUID]
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, str]]:
    outputs: dict[uuid.UUID, int] = {}
    captions: dict[uuid.UUID, str] = {}
    if not generation_ids:
        return outputs, captions
    rows = session.execute(
        select(Asset.generation_id, Asset.id).where(
            Asset.generation_id.in_(generation_ids), Asset.kind == "output", Asset.deleted_at.is_(None)
        )
    ).all()
    generation_of = {asset_id: generation_id for generation_id, asset_id in rows}
    for generation_id, _ in rows:
        outputs[generation_id] = outputs.get(generation_id, 0) + 1
    if generation_of:
        for asset_id, text in session.execute(
            select(Caption.asset_id, Caption.text)
            .where(Caption.asset_id.in_(list(generation_of)), Caption.text.is_not(None))
            .order_by(Caption.created_at)
        ):
            captions[generation_of[asset_id]] = text  # the newest caption of any of the step's images
    return outputs, captions


def _history(session: Session, claimed: ClaimedGeneration) -> list[tuple[str, str]]:
    """Earlier replies of the session and the questions they answered (newest HISTORY_TURNS)."""
    rows = session.execute(
        select(Generation.prompt, Message.content)
        .join(Message, Message.id == Generation.message_id)
        .where(
            Generation.session_id == claimed.session_id,
            Generation.type == "reply",
            Generation.status == RunStatus.succeeded.value,
            Generation.id != claimed.id,
            Generation.created_at <= claimed.created_at,
        )
        .order_by(Generation.created_at.desc(), Generation.id.desc())
        .limit(HISTORY_TURNS)
    ).all()
    history: list[tuple[str, str]] = []
    for question, answer in reversed(rows):
        history += [("user", question), ("assistant", answer)]
    return history


def chat_request(context: ReplyContext, question: str, image: Image.Image | None, model: str | None) -> ChatRequest:
    messages = [ChatMessage("system", REPLY_SYSTEM), ChatMessage("system", context.facts())]
    messages += [ChatMessage(role, text) for role, text in context.history]
    asked = question if image is None else f"{question}\n\n(The image this question is about is attached.)"
    messages.append(ChatMessage("user", asked, images=[image] if image is not None else ()))
    return ChatRequest(messages, model=model, max_tokens=REPLY_MAX_TOKENS)


def facts_answer(context: ReplyContext, question: str) -> ChatResult:
    """The built-in answer: the session's recorded facts (one step when the question names it)."""
    named = {int(number) for number in _STEP_NAMED.findall(question)}
    chosen = [step for step in context.steps if step.step in named]
    if not context.steps:
        body = "This session has no images yet."
    elif chosen:
        body = "\n".join(step.line() for step in chosen)
    elif named:
        body = f"There is no step {', '.join(str(number) for number in sorted(named))}. {context.facts()}"
    else:
        body = context.facts()
    return ChatResult(f"{NO_MODEL_NOTE}\n\n{body}", provider=BUILTIN, model=FACTS_MODEL, usage=Usage(), by_ai=False)


def split_suggestion(text: str) -> tuple[str, str | None]:
    """(the answer without its suggested prompt, the prompt) from a model's answer."""
    answer = text.strip()
    found = _PROMPT_BLOCK.search(answer)
    if found is None:
        lines = list(_PROMPT_LINE.finditer(answer))
        found = lines[-1] if lines and lines[-1].end() >= len(answer.rstrip()) else None
    if found is None:
        return answer, None
    prompt = " ".join(found.group("prompt").split()).strip("\"'` ")[:SUGGESTED_PROMPT_MAX]
    rest = (answer[: found.start()] + answer[found.end() :]).strip()
    if not prompt:
        return rest or answer, None
    return rest or prompt, prompt


def finish_reply(db: Database, claimed: ClaimedGeneration, result: ChatResult) -> Outcome:
    """Write the answer into its message and record the job's success, in one fenced transaction."""
    answer, suggestion = split_suggestion(result.text)
    usage = {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens}

    def write_message(session: Session) -> None:
        if claimed.message_id is None:
            return
        session.execute(
            update(MESSAGES)
            .where(MESSAGES.c.id == claimed.message_id, MESSAGES.c.role == MessageRole.assistant.value)
            .values(
                content=answer,
                type=MessageType.text.value,
                model=result.model,
                prompt_tokens=result.usage.prompt_tokens,
                completion_tokens=result.usage.completion_tokens,
                extra={"suggested_prompt": suggestion, "by_ai": result.by_ai, "provider": result.provider},
                updated_at=utcnow(),
            )
        )

    return fenced.finish_language_job(
        db, claimed, served_by=result.provider, model=result.model, usage=usage, also=write_message
    )
