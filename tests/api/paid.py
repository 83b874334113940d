"""A studio whose paid provider is the fake OpenAI (with a studio key, or none) beside the built-in
renderer: for tests of users' own keys, spend and budgets."""

from __future__ import annotations

from pathlib import Path

import httpx

from imagestudio.config import Settings
from imagestudio.container import Container
from imagestudio.db import Database
from imagestudio.notify import NotificationHub
from imagestudio.providers.builtin import BuiltinRenderer
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.providers.stability import StabilityProvider
from imagestudio.storage import storage_from_url
from tests.fakes.common import client_for
from tests.fakes.openai import BASE_URL as OPENAI_URL
from tests.fakes.openai import FakeOpenAI, openai_provider

STUDIO_KEY = "sk-studio-key-0000"
# A 1024 px gpt-image-1 picture from the fake: 50 text tokens at $5/M and 272 output tokens at $40/M.
PAINT = {"prompt": "a kite", "provider": "openai", "width": 1024, "height": 1024}
PAINT_COST = "0.011130"
FREE = {"prompt": "a kite", "provider": "builtin", "width": 64, "height": 64}


def paid_container(
    db: Database, hub: NotificationHub, settings: Settings, tmp_path: Path, fake: FakeOpenAI, studio_key: str | None
) -> Container:
    registry = ProviderRegistry()
    registry.register(BuiltinRenderer())
    registry.register(openai_provider(fake, client_for(fake.app, OPENAI_URL), api_key=studio_key or "", timeout=5.0))
    # Never called: a second hosted provider, without a key.
    registry.register(StabilityProvider(None, client=httpx.AsyncClient()))
    registry.sync_to_database(db)
    storage = storage_from_url(str(tmp_path / "storage"))
    return Container(settings=settings, db=db, storage=storage, registry=registry, hub=hub)
