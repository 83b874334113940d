"""UI generation jobs in the generations queue: retried, refused, cancelled while running, and
recovered after the crash of their worker. Each runs on SQLite and PostgreSQL with a real worker and
the OpenAI-compatible client talking to its fake server."""

from __future__ import annotations

import uuid

import pytest

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations import queue
from imagestudio.generations.events import events_after
from imagestudio.generations.service import request_cancel
from imagestudio.language import LanguageRegistry
from imagestudio.models import UiGeneration, User
from imagestudio.storage.keys import code_key
from imagestudio.uicode import jobs
from imagestudio.uicode.service import UiRequest, UiView, request_ui
from tests import factories
from tests.fakes.chat_openai import FakeChatCompletions, chat_model
from tests.fakes.common import Fault
from tests.generations.conftest import load, running_worker, wait_final, wait_for

pytestmark = pytest.mark.anyio
DOCUMENT = "```html\n<!doctype html><html><head><title>Card</title></head><body><h1>Card</h1></body></html>\n```"


@pytest.fixture(autouse=True)
def ui_jobs() -> None:
    jobs.install()


@pytest.fixture
def fake() -> FakeChatCompletions:
    return FakeChatCompletions()


@pytest.fixture
def language(fake: FakeChatCompletions) -> LanguageRegistry:
    return LanguageRegistry([chat_model(fake, timeout=5.0)], default="openai")


def _ask(db: Database, settings: Settings, language: LanguageRegistry, user_id: uuid.UUID) -> UiView:
    with db.writing() as session:
        chat = factories.make_session(session, session.get(User, user_id))
        request = UiRequest(
            owner_id=user_id,
            session_id=chat.id,
            prompt="a card",
            user_message_id=None,
            assistant_message_id=None,
            parent=None,
            source=None,
            provider=None,
            model=None,
        )
        view = request_ui(session, request, language=language, settings=settings)
        session.expunge_all()
    return view


def _types(db: Database, generation_id: uuid.UUID) -> list[str]:
    return [event.type for event in events_after(db, generation_id=generation_id)]


def _row(db: Database, ui_id: uuid.UUID) -> UiGeneration:
    with db.reading() as session:
        row = session.get(UiGeneration, ui_id)
        session.expunge_all()
    return row


async def test_a_rate_limit_is_retried_after_its_hint(db, storage, registry, settings, language, fake, user_id):
    fake.fail_next(Fault.rate_limit(retry_after=0.05))
    fake.reply_next(DOCUMENT)
    view = _ask(db, settings, language, user_id)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [view.job.id])
    job = final[view.job.id]
    assert (job.status, job.attempt) == ("succeeded", 2)
    assert _types(db, job.id) == ["queued", "started", "retrying", "started", "succeeded"]
    row = _row(db, view.row.id)
    assert row.storage_key == code_key(job.id, 2) and row.title == "Card"
    assert b"<h1>Card</h1>" in storage.get(row.storage_key)


@pytest.mark.parametrize("style", ["refusal", "filter", "error"])
async def test_a_refusal_fails_at_once_and_stores_nothing(
    db, storage, registry, settings, language, fake, user_id, style: str
) -> None:
    fake.fail_next(Fault.content_rejection(style=style))
    view = _ask(db, settings, language, user_id)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [view.job.id])
    job = final[view.job.id]
    assert (job.status, job.error_code, job.attempt) == ("failed", "content_rejected", 1)
    assert _row(db, view.row.id).storage_key is None
    assert list(storage.list(f"code/{job.id}/")) == []


async def test_cancel_stops_a_running_ui_generation(db, storage, registry, settings, language, fake, user_id):
    fake.fail_next(Fault.slow(30))
    view = _ask(db, settings, language, user_id)
    async with running_worker(db, storage, registry, settings, language=language):
        await wait_for(lambda: len(fake.requests) == 1)
        with db.writing() as session:
            request_cancel(session, generation_id=view.job.id, owner_id=user_id)
        final = await wait_final(db, [view.job.id])
    assert final[view.job.id].status == "canceled"
    assert _types(db, view.job.id) == ["queued", "started", "cancel_requested", "canceled"]
    assert _row(db, view.row.id).storage_key is None
    assert fake.completed == 0, "the slow answer was abandoned, not waited for"


async def test_a_ui_generation_survives_the_crash_of_its_worker(
    db, storage, registry, settings, language, fake, user_id
) -> None:
    """A worker claims the job and dies holding it; the reaper requeues it and another worker writes
    the code, once, under its own attempt's key."""
    fake.reply_next(DOCUMENT)
    view = _ask(db, settings, language, user_id)
    claimed = queue.claim(db, worker_id="crashed-worker", limit=1, lease_seconds=0.2, default_max_running=2)
    assert [job.id for job in claimed] == [view.job.id]
    assert load(db, view.job.id).status == "processing"
    async with running_worker(db, storage, registry, settings, language=language, reap_interval=0.1):
        final = await wait_final(db, [view.job.id])
    job = final[view.job.id]
    assert (job.status, job.attempt) == ("succeeded", 2)
    assert events_after(db, generation_id=job.id)[2].payload["error"]["code"] == "worker_lost"
    assert _row(db, view.row.id).storage_key == code_key(job.id, 2)
    assert len(fake.requests) == 1, "only the surviving worker asked the model"
