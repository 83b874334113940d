"""Caption jobs in the generations queue: run, retried, refused, cancelled, and recovered after a crash.

Each runs on SQLite and PostgreSQL with a real worker; the language models are the built-in
describer and the OpenAI-compatible client talking to its fake server.
"""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image
from sqlalchemy import select

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations import queue
from imagestudio.generations.events import events_after
from imagestudio.generations.service import request_cancel
from imagestudio.kit.errors import ApiError
from imagestudio.language import LanguageRegistry
from imagestudio.models import Asset, Caption, CaptionStyle, Generation, User
from tests import factories
from tests.fakes.chat_openai import FakeChatCompletions, chat_model
from tests.fakes.common import Fault
from tests.generations.conftest import ask_caption, load, running_worker, wait_final, wait_for

pytestmark = pytest.mark.anyio


def _png(size: tuple[int, int], colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def fake() -> FakeChatCompletions:
    return FakeChatCompletions()


@pytest.fixture
def language(fake: FakeChatCompletions) -> LanguageRegistry:
    return LanguageRegistry([chat_model(fake, timeout=5.0)], default="openai")


@pytest.fixture
def asset(db: Database, storage, user_id: uuid.UUID) -> Asset:
    """An uploaded 120x80 red picture, stored for real."""
    with db.writing() as session:
        asset = factories.make_upload(session, session.get(User, user_id), width=120, height=80)
    storage.put(asset.storage_key, _png((120, 80), (200, 20, 20)), "image/png")
    return asset


def _ask(db: Database, settings: Settings, language: LanguageRegistry, asset: Asset, **options: object):
    return ask_caption(db, settings, language, asset.id, options.pop("owner_id", asset.owner_id), **options)


def _caption(db: Database, caption_id: uuid.UUID) -> Caption:
    with db.reading() as session:
        caption = session.get(Caption, caption_id)
        assert caption is not None
        return caption


def _types(db: Database, generation_id: uuid.UUID) -> list[str]:
    return [event.type for event in events_after(db, generation_id=generation_id)]


async def test_a_caption_is_written_by_the_language_model(
    db: Database, storage, registry, settings, language, fake, asset
) -> None:
    view = _ask(db, settings, language, asset, style=CaptionStyle.detailed)
    caption = view.caption
    assert (view.status, caption.text, caption.style) == ("queued", None, "detailed")
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [caption.generation_id])
    job = final[caption.generation_id]
    assert (job.status, job.type, job.provider, job.attempt) == ("succeeded", "caption", "openai", 1)
    stored = _caption(db, caption.id)
    # The fake names the size and colour of the picture it decoded: the stored asset itself arrived.
    assert stored.text == "A picture of 120x80 pixels, mostly #c81414."
    assert (stored.provider, stored.model, stored.by_ai) == ("openai", "gpt-4o-mini", True)
    # The fake counts the instruction's words and 85 tokens for the picture.
    instruction = fake.last.json["messages"][0]["content"][0]["text"]
    assert stored.prompt_tokens == len(instruction.split()) + 85
    assert stored.completion_tokens == len(stored.text.split())
    assert job.usage == {"prompt_tokens": stored.prompt_tokens, "completion_tokens": stored.completion_tokens}
    assert "detailed paragraph" in fake.last.json["messages"][0]["content"][0]["text"]
    assert _types(db, caption.generation_id) == ["queued", "started", "succeeded"]
    with db.reading() as session:
        assert session.scalars(select(Asset).where(Asset.generation_id == caption.generation_id)).all() == []


async def test_the_builtin_describer_captions_without_any_service(db: Database, storage, registry, settings, asset):
    view = _ask(db, settings, LanguageRegistry(), asset, style=CaptionStyle.prompt)
    assert view.caption.provider == "builtin" and view.caption.model == "measured"
    async with running_worker(db, storage, registry, settings):  # the worker's own built-in describer
        await wait_final(db, [view.caption.generation_id])
    stored = _caption(db, view.caption.id)
    assert stored.text == "a landscape picture in red tones, dim, low contrast"
    assert stored.by_ai is False and (stored.prompt_tokens, stored.completion_tokens) == (0, 0)


async def test_a_rate_limit_is_retried_after_its_hint(db: Database, storage, registry, settings, language, fake, asset):
    fake.fail_next(Fault.rate_limit(retry_after=0.05))
    view = _ask(db, settings, language, asset)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [view.caption.generation_id])
    job = final[view.caption.generation_id]
    assert (job.status, job.attempt) == ("succeeded", 2)
    assert _types(db, job.id) == ["queued", "started", "retrying", "started", "succeeded"]
    retrying = events_after(db, generation_id=job.id)[2]
    assert retrying.payload["error"]["code"] == "provider_rate_limited"
    assert _caption(db, view.caption.id).text.startswith("A picture of 120x80")


@pytest.mark.parametrize("style", ["refusal", "filter", "error"])
async def test_a_refusal_fails_at_once_and_writes_no_text(
    db: Database, storage, registry, settings, language, fake, asset, style: str
) -> None:
    fake.fail_next(Fault.content_rejection(style=style))
    view = _ask(db, settings, language, asset)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [view.caption.generation_id])
    job = final[view.caption.generation_id]
    assert (job.status, job.error_code, job.attempt) == ("failed", "content_rejected", 1)
    assert _caption(db, view.caption.id).text is None


async def test_a_timeout_is_retried_and_then_fails(db: Database, storage, registry, settings, fake, asset) -> None:
    settings.default_max_attempts = 2
    language = LanguageRegistry([chat_model(fake, timeout=0.3)], default="openai")
    fake.fail_next(Fault.slow(30), Fault.slow(30))
    view = _ask(db, settings, language, asset)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [view.caption.generation_id])
    job = final[view.caption.generation_id]
    assert (job.status, job.error_code, job.attempt) == ("failed", "provider_timeout", 2)


async def test_cancel_stops_a_running_caption(db: Database, storage, registry, settings, language, fake, asset):
    fake.fail_next(Fault.slow(30))
    view = _ask(db, settings, language, asset)
    generation_id = view.caption.generation_id
    async with running_worker(db, storage, registry, settings, language=language):
        await wait_for(lambda: len(fake.requests) == 1)
        with db.writing() as session:
            request_cancel(session, generation_id=generation_id, owner_id=asset.owner_id)
        final = await wait_final(db, [generation_id])
    assert final[generation_id].status == "canceled"
    assert _types(db, generation_id) == ["queued", "started", "cancel_requested", "canceled"]
    assert _caption(db, view.caption.id).text is None
    assert fake.completed == 0, "the slow answer was abandoned, not waited for"


async def test_a_caption_survives_the_crash_of_its_worker(
    db: Database, storage, registry, settings, language, fake, asset
) -> None:
    """A worker claims the job and dies holding it (its lease is never renewed); the reaper returns
    the job to the queue and another worker writes the caption, once."""
    view = _ask(db, settings, language, asset)
    generation_id = view.caption.generation_id
    claimed = queue.claim(db, worker_id="crashed-worker", limit=1, lease_seconds=0.2, default_max_running=2)
    assert [job.id for job in claimed] == [generation_id]
    assert load(db, generation_id).status == "processing"
    async with running_worker(db, storage, registry, settings, language=language, reap_interval=0.1):
        final = await wait_final(db, [generation_id])
    job = final[generation_id]
    assert (job.status, job.attempt, job.lease_owner == "crashed-worker") == ("succeeded", 2, False)
    assert _types(db, generation_id) == ["queued", "started", "retrying", "started", "succeeded"]
    assert events_after(db, generation_id=generation_id)[2].payload["error"]["code"] == "worker_lost"
    assert len(fake.requests) == 1, "only the surviving worker asked the model"
    assert _caption(db, view.caption.id).text.startswith("A picture of 120x80")


async def test_a_missing_stored_image_fails_without_retrying(
    db: Database, storage, registry, settings, language, asset
):
    storage.delete(asset.storage_key)
    view = _ask(db, settings, language, asset)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [view.caption.generation_id])
    job = final[view.caption.generation_id]
    assert (job.status, job.error_code, job.attempt) == ("failed", "input_unavailable", 1)


def test_bad_requests_are_refused_before_anything_is_queued(db: Database, settings, language, asset) -> None:
    with db.writing() as session:
        stranger = factories.make_user(session)
        stranger_id = stranger.id
    cases = [
        ({"provider": "no-such-model"}, 422, "provider"),
        ({"provider": "gemini"}, 422, "provider"),  # registered but without a key
    ]
    for options, status, field in cases:
        with pytest.raises(ApiError) as caught:
            _ask(db, settings, LanguageRegistry.from_settings(settings, None), asset, **options)  # type: ignore[arg-type]
        assert caught.value.status == status and caught.value.fields[0].field == field
    with pytest.raises(ApiError) as caught:
        _ask(db, settings, language, asset, owner_id=stranger_id)
    assert caught.value.status == 404
    with db.reading() as session:
        assert session.scalars(select(Caption)).all() == []
        assert session.scalars(select(Generation)).all() == []
