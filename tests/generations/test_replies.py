"""Reply jobs in the generations queue: streamed as delta events, retried, refused, cancelled mid-answer,
recovered after a crash, and answered by each language model (OpenAI-compatible and Gemini against their
fakes, local transformers with a tiny model, the built-in facts answer).

Each runs on SQLite and PostgreSQL with a real worker.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from imagestudio.db import Database
from imagestudio.generations import fenced, language_steps, queue
from imagestudio.generations.events import events_after
from imagestudio.generations.service import request_cancel
from imagestudio.language import LanguageRegistry
from imagestudio.language.local import LocalTransformersModel
from imagestudio.language.openai_chat import OpenAIChatModel
from imagestudio.models import Generation, Message
from tests.fakes.chat_gemini import FakeGeminiText, gemini_chat_model
from tests.fakes.chat_openai import FakeChatCompletions, chat_model
from tests.fakes.common import Fault
from tests.fakes.server import serve
from tests.generations.conftest import ask_reply, load, running_worker, wait_final, wait_for

pytestmark = pytest.mark.anyio

ANSWER = "Lower the sun and add long shadows.\n\n```prompt\na lighthouse at dusk, low sun, long shadows\n```"


@pytest.fixture
def fake() -> FakeChatCompletions:
    return FakeChatCompletions()


@pytest.fixture
def language(fake: FakeChatCompletions) -> LanguageRegistry:
    return LanguageRegistry([chat_model(fake, timeout=5.0)], default="openai")


def deltas(db: Database, generation_id: uuid.UUID, attempt: int | None = None) -> list[dict]:
    return [
        event.payload
        for event in events_after(db, generation_id=generation_id)
        if event.type == "delta" and (attempt is None or event.attempt == attempt)
    ]


def types(db: Database, generation_id: uuid.UUID) -> list[str]:
    """The job's events, runs of deltas folded into one."""
    folded: list[str] = []
    for event in events_after(db, generation_id=generation_id):
        if not (event.type == "delta" and folded and folded[-1] == "delta"):
            folded.append(event.type)
    return folded


def message_of(db: Database, generation_id: uuid.UUID) -> Message:
    with db.reading() as session:
        message_id = session.scalar(select(Generation.message_id).where(Generation.id == generation_id))
        message = session.get(Message, message_id)
        assert message is not None
        return message


def assert_in_order(pieces: list[dict]) -> None:
    assert [piece["offset"] for piece in pieces] == [
        sum(len(piece["text"]) for piece in pieces[:index]) for index in range(len(pieces))
    ]


async def test_the_answer_streams_as_deltas_and_lands_in_its_message(
    db: Database, storage, registry, settings, language, fake, user_id
) -> None:
    fake.reply_next(ANSWER)
    generation_id = ask_reply(db, settings, language, user_id, "what would make this more cinematic?")
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id])
    job = final[generation_id]
    assert (job.status, job.type, job.attempt, job.provider, job.model) == (
        "succeeded",
        "reply",
        1,
        "openai",
        "gpt-4o-mini",
    )
    pieces = deltas(db, generation_id)
    assert "".join(piece["text"] for piece in pieces) == ANSWER
    assert_in_order(pieces)
    assert types(db, generation_id) == ["queued", "started", "delta", "succeeded"]
    message = message_of(db, generation_id)
    assert (message.status, message.type, message.model) == ("succeeded", "text", "gpt-4o-mini")
    assert message.content == "Lower the sun and add long shadows."
    assert message.extra["suggested_prompt"] == "a lighthouse at dusk, low sun, long shadows"
    assert message.completion_tokens == len(ANSWER.split()) and message.prompt_tokens > 0
    assert job.usage == {"prompt_tokens": message.prompt_tokens, "completion_tokens": message.completion_tokens}


async def test_a_rate_limit_is_retried_after_its_hint(
    db: Database, storage, registry, settings, language, fake, user_id
):
    fake.fail_next(Fault.rate_limit(retry_after=0.05))
    generation_id = ask_reply(db, settings, language, user_id, "describe step 1")
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id])
    assert (final[generation_id].status, final[generation_id].attempt) == ("succeeded", 2)
    assert types(db, generation_id) == ["queued", "started", "retrying", "started", "delta", "succeeded"]
    retrying = next(e for e in events_after(db, generation_id=generation_id) if e.type == "retrying")
    assert retrying.payload["error"]["code"] == "provider_rate_limited"
    assert message_of(db, generation_id).content == "An answer about describe step 1"


@pytest.mark.parametrize("style", ["refusal", "filter", "error"])
async def test_a_refusal_fails_at_once(db: Database, storage, registry, settings, language, fake, user_id, style: str):
    fake.fail_next(Fault.content_rejection(style=style))
    generation_id = ask_reply(db, settings, language, user_id, "say something")
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id])
    job = final[generation_id]
    assert (job.status, job.error_code, job.attempt) == ("failed", "content_rejected", 1)
    message = message_of(db, generation_id)
    assert (message.status, message.content) == ("failed", "")


async def test_a_timeout_is_retried_and_then_fails(db: Database, storage, registry, settings, fake, user_id) -> None:
    settings.default_max_attempts = 2
    language = LanguageRegistry([chat_model(fake, timeout=0.3)], default="openai")
    fake.fail_next(Fault.slow(30), Fault.slow(30))
    generation_id = ask_reply(db, settings, language, user_id, "why?")
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id])
    job = final[generation_id]
    assert (job.status, job.error_code, job.attempt) == ("failed", "provider_timeout", 2)
    assert message_of(db, generation_id).status == "failed"


async def test_cancel_stops_an_answer_in_the_middle(db: Database, storage, registry, settings, fake, user_id):
    """The model streams three words and stalls (over a real socket, as a slow model would); a cancel
    stops the job there, and the half answer is not written into the message."""
    release = fake.hold_stream(after_words=3)
    fake.reply_next("one two three four five six")
    with serve(fake.app) as server:
        async with httpx.AsyncClient() as client:
            model = OpenAIChatModel(
                client=client, base_url=f"{server.base_url}/v1", api_key=fake.api_key, model="gpt-4o-mini"
            )
            language = LanguageRegistry([model], default="openai")
            generation_id = ask_reply(db, settings, language, user_id, "count")
            try:
                async with running_worker(db, storage, registry, settings, language=language):
                    await wait_for(lambda: "".join(p["text"] for p in deltas(db, generation_id)) == "one two three")
                    with db.writing() as session:
                        request_cancel(session, generation_id=generation_id, owner_id=user_id)
                    final = await wait_final(db, [generation_id])
            finally:
                release.set()
    assert final[generation_id].status == "canceled"
    assert types(db, generation_id) == ["queued", "started", "delta", "cancel_requested", "canceled"]
    message = message_of(db, generation_id)
    assert (message.status, message.content) == ("canceled", "")


async def test_a_reply_survives_the_crash_of_its_worker_in_the_middle_of_its_answer(
    db: Database, storage, registry, settings, language, fake, user_id
) -> None:
    """A worker claims the reply, streams part of the answer and dies holding it; the reaper returns it
    to the queue, and another worker answers from the start as attempt 2. The message holds that one
    whole answer; the first attempt's piece stays in the log under its own attempt."""
    fake.reply_next(ANSWER)
    generation_id = ask_reply(db, settings, language, user_id, "what would make this more cinematic?")
    [crashed] = queue.claim(db, worker_id="crashed-worker", limit=1, lease_seconds=0.3, default_max_running=2)
    assert crashed.id == generation_id
    assert fenced.record_delta(db, crashed, "Lower the", 0) is False
    async with running_worker(db, storage, registry, settings, language=language, reap_interval=0.1):
        final = await wait_final(db, [generation_id])
    job = final[generation_id]
    assert (job.status, job.attempt) == ("succeeded", 2)
    assert types(db, generation_id) == ["queued", "started", "delta", "retrying", "started", "delta", "succeeded"]
    assert deltas(db, generation_id, attempt=1) == [{"text": "Lower the", "offset": 0}]
    second = deltas(db, generation_id, attempt=2)
    assert "".join(piece["text"] for piece in second) == ANSWER and second[0]["offset"] == 0
    assert message_of(db, generation_id).content == "Lower the sun and add long shadows."
    assert len(fake.requests) == 1, "only the surviving worker asked the model"
    # The crashed worker's late writes are fenced off.
    assert fenced.record_delta(db, crashed, " sun", 9) is None


async def test_without_a_language_model_the_builtin_reports_the_facts(
    db: Database, storage, registry, settings, user_id
):
    generation_id = ask_reply(db, settings, LanguageRegistry(), user_id, "describe step 2")
    assert (load(db, generation_id).provider, load(db, generation_id).model) == ("builtin", "session-facts")
    async with running_worker(db, storage, registry, settings):
        await wait_final(db, [generation_id])
    message = message_of(db, generation_id)
    assert message.status == "succeeded" and message.extra["by_ai"] is False
    assert message.content.startswith("No language model is configured, so this is not an AI answer")
    assert message.content.endswith("This session has no images yet.")
    assert "".join(piece["text"] for piece in deltas(db, generation_id)).startswith("No language model")


async def test_gemini_streams_a_reply(db: Database, storage, registry, settings, user_id) -> None:
    gemini = FakeGeminiText()
    language = LanguageRegistry([gemini_chat_model(gemini, timeout=5.0)], default="gemini")
    gemini.reply_next(ANSWER)
    generation_id = ask_reply(db, settings, language, user_id, "what would make this more cinematic?")
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id])
    assert final[generation_id].status == "succeeded"
    assert gemini.last.path.endswith(":streamGenerateContent")
    assert "".join(piece["text"] for piece in deltas(db, generation_id)) == ANSWER
    message = message_of(db, generation_id)
    assert message.extra["suggested_prompt"] == "a lighthouse at dusk, low sun, long shadows"
    assert (message.model, message.completion_tokens) == ("gemini-2.5-flash", len(ANSWER.split()))


async def test_gemini_rate_limit_and_refusal(db: Database, storage, registry, settings, user_id) -> None:
    gemini = FakeGeminiText()
    language = LanguageRegistry([gemini_chat_model(gemini, timeout=5.0)], default="gemini")
    gemini.fail_next(Fault.rate_limit(retry_after=0.05))
    retried = ask_reply(db, settings, language, user_id, "why?")
    async with running_worker(db, storage, registry, settings, language=language):
        first = await wait_final(db, [retried])
        gemini.fail_next(Fault.content_rejection(where="answer"))
        refused = ask_reply(db, settings, language, user_id, "why not?")
        second = await wait_final(db, [refused])
    assert (first[retried].status, first[retried].attempt) == ("succeeded", 2)
    assert (second[refused].status, second[refused].error_code) == ("failed", "content_rejected")


@pytest.fixture(scope="module")
def tiny_text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from tests.language.local_fixtures import build_tiny_text_model

    return build_tiny_text_model(tmp_path_factory.mktemp("tiny-reply-model") / "tiny-writer")


async def test_a_local_model_streams_a_reply(db: Database, storage, registry, settings, user_id, tiny_text_model):
    language = LanguageRegistry([LocalTransformersModel(text_model=tiny_text_model)], default="transformers")
    generation_id = ask_reply(db, settings, language, user_id, "what would make this more cinematic?")
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id], seconds=60)
    assert final[generation_id].status == "succeeded", final[generation_id].error_message
    pieces = deltas(db, generation_id)
    assert pieces, "the answer came as it was written"
    assert_in_order(pieces)
    message = message_of(db, generation_id)
    assert message.model == "tiny-writer" and message.completion_tokens > 0 and message.prompt_tokens > 0
    streamed = "".join(piece["text"] for piece in pieces).strip()
    assert message.content == streamed or streamed.startswith(message.content)


async def test_pieces_that_arrive_during_a_write_go_out_together_in_order(monkeypatch) -> None:
    monkeypatch.setattr(language_steps, "DELTA_INTERVAL_SECONDS", 0.0)
    gate = asyncio.Event()
    written: list[tuple[str, int]] = []

    async def write(text: str, offset: int) -> None:
        written.append((text, offset))
        if len(written) == 1:
            await gate.wait()  # the first write is slow: what comes meanwhile waits for it

    writer = language_steps.DeltaWriter(write)
    writer.add("Lower")
    await asyncio.sleep(0)  # the first write starts
    writer.add(" the")
    writer.add(" sun")
    assert written == [("Lower", 0)]
    gate.set()
    await writer.flush()
    writer.add(".")
    await writer.flush()
    assert written == [("Lower", 0), (" the sun", 5), (".", 13)]


async def test_a_failed_write_ends_the_stream() -> None:
    async def write(text: str, offset: int) -> None:
        raise RuntimeError("the database is gone")

    writer = language_steps.DeltaWriter(write)
    writer.add("a")
    with pytest.raises(RuntimeError):
        await writer.flush()
    with pytest.raises(RuntimeError):
        writer.add("b")
