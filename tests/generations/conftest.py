"""Fixtures for the engine tests: settings with short leases, local storage in a temp folder, a
registry holding the built-in renderer and the scripted provider, and helpers to run a worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from imagestudio import notify
from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations.captions import CaptionView, request_caption
from imagestudio.generations.service import create_generation
from imagestudio.generations.spec import GenerationSpec
from imagestudio.generations.worker import Worker
from imagestudio.language import LanguageRegistry
from imagestudio.models import FINAL_STATUSES, CaptionStyle, Generation, User
from imagestudio.models.types import utcnow
from imagestudio.notify import NotificationHub
from imagestudio.providers.builtin import BuiltinRenderer
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.sessions.chat import post_turn
from imagestudio.sessions.schemas import ChatTurnCreate
from imagestudio.storage.local import LocalStorage
from tests import factories
from tests.generations.scripted import ScriptedProvider


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        lease_seconds=5.0,
        max_running_per_user=2,
        default_max_attempts=3,
    )


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
def scripted() -> ScriptedProvider:
    return ScriptedProvider()


@pytest.fixture
def registry(scripted: ScriptedProvider) -> ProviderRegistry:
    registry = ProviderRegistry()
    registry.register(BuiltinRenderer())
    registry.register(scripted)
    return registry


@pytest.fixture
def user_id(db: Database) -> uuid.UUID:
    with db.writing() as session:
        return factories.make_user(session).id


def submit(
    db: Database, owner_id: uuid.UUID, registry: ProviderRegistry, settings: Settings, **fields: object
) -> uuid.UUID:
    """Create and commit one generation (64 px scripted by default); returns its id."""
    session_id = fields.pop("session_id", None)
    message_id = fields.pop("message_id", None)
    key = fields.pop("idempotency_key", None)
    fields.setdefault("provider", "scripted")
    fields.setdefault("width", 64)
    fields.setdefault("height", 64)
    with db.writing() as session:
        generation = create_generation(
            session,
            owner_id=owner_id,
            spec=GenerationSpec(**fields),
            registry=registry,
            settings=settings,
            session_id=session_id,
            message_id=message_id,
            idempotency_key=key,
        )
        return generation.id


def expire_lease(db: Database, generation_id: uuid.UUID) -> None:
    """Make a generation's lease run out now (as if its worker stopped renewing it)."""
    with db.writing() as session:
        session.execute(
            update(Generation)
            .where(Generation.id == generation_id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )


def ask_caption(
    db: Database, settings: Settings, language: LanguageRegistry, asset_id: uuid.UUID, owner_id: uuid.UUID, **options
) -> CaptionView:
    """Queue and commit a caption of the asset (style short, the registry's default model unless given)."""
    with db.writing() as session:
        return request_caption(
            session,
            owner_id=owner_id,
            asset_id=asset_id,
            style=options.pop("style", CaptionStyle.short),
            provider=options.pop("provider", None),
            model=options.pop("model", None),
            language=language,
            settings=settings,
        )


def ask_reply(
    db: Database, settings: Settings, language: LanguageRegistry, owner_id: uuid.UUID, question: str
) -> uuid.UUID:
    """A new session and a reply turn in it, committed; returns the reply's generation id."""
    with db.writing() as session:
        user = session.get(User, owner_id)
        chat = factories.make_session(session, user)
        turn = post_turn(
            session,
            user=user,
            session_id=chat.id,
            body=ChatTurnCreate(content=question, mode="reply"),
            registry=None,  # type: ignore[arg-type]  (a reply needs no image provider)
            settings=settings,
            language=language,
        )
        return turn.generation_id


def load(db: Database, generation_id: uuid.UUID) -> Generation:
    with db.reading() as session:
        generation = session.get(Generation, generation_id)
        assert generation is not None
        return generation


async def wait_for(condition, seconds: float = 10.0, interval: float = 0.01):
    """Poll a (sync) condition off the event loop until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {seconds}s")
        await asyncio.sleep(interval)


async def wait_final(db: Database, ids: Iterable[uuid.UUID], seconds: float = 15.0) -> dict[uuid.UUID, Generation]:
    wanted = set(ids)
    final = {str(status) for status in FINAL_STATUSES}

    def check():
        with db.reading() as session:
            rows = session.scalars(select(Generation).where(Generation.id.in_(wanted))).all()
        if len(rows) == len(wanted) and all(row.status in final for row in rows):
            return {row.id: row for row in rows}
        return None

    return await wait_for(check, seconds)


@asynccontextmanager
async def running_worker(
    db: Database, storage, registry: ProviderRegistry, settings: Settings, **options: object
) -> AsyncIterator[Worker]:
    options.setdefault("poll_interval", 0.05)
    options.setdefault("backoff_base", 0.05)
    hub = options.pop("hub", None)
    # Without a hub of its own the worker hears the database's notices, as in a real process.
    detach = None if hub is not None else notify.attach(db, hub := NotificationHub())
    worker = Worker(db=db, storage=storage, registry=registry, settings=settings, hub=hub, **options)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.stop(grace=2.0)
        if detach is not None:
            detach()
