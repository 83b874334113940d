"""Fixtures for the engine tests: settings with short leases, local storage in a temp folder, a
registry holding the built-in renderer and the scripted provider, and helpers to run a worker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import select

from imagestudio import notify
from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations.service import create_generation
from imagestudio.generations.spec import GenerationSpec
from imagestudio.generations.worker import Worker
from imagestudio.models import FINAL_STATUSES, Generation
from imagestudio.notify import NotificationHub
from imagestudio.providers.builtin import BuiltinRenderer
from imagestudio.providers.registry import ProviderRegistry
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
