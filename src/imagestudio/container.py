"""The process's Container and the request-scoped dependencies every endpoint shares.

- `ContainerDep`: the process's Container (settings, db, storage, providers, language models,
  notification hub).
- `DbSession`: the request's transaction. GET/HEAD/OPTIONS get a read session; other methods a
  write session (BEGIN IMMEDIATE on SQLite). It commits when the endpoint returns (before the
  response is sent) and rolls back when it raises; services only flush.

It sits above storage, providers and language and below every domain; `bootstrap.build()` fills it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.kit.pending import PendingUses
from imagestudio.language import LanguageRegistry
from imagestudio.notify import NotificationHub
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.storage.base import Storage


@dataclass
class Container:
    settings: Settings
    db: Database
    storage: Storage
    # Empty unless built by build(); tests may fill one with their own providers.
    registry: ProviderRegistry = field(default_factory=ProviderRegistry)
    # Language and vision models (captions, enhancement, titles); the built-in describer unless built.
    language: LanguageRegistry = field(default_factory=LanguageRegistry)
    # Wake-ups for workers and live streams. build() attaches it to `db`; a hub nobody attached
    # hears nothing, and waiters fall back to polling.
    hub: NotificationHub = field(default_factory=NotificationHub)
    # API key uses counted since their last write (see accounts.service.resolve_api_key).
    api_key_uses: PendingUses = field(init=False)

    def __post_init__(self) -> None:
        self.api_key_uses = PendingUses(self.settings.api_key_usage_flush_seconds)

    def close(self) -> None:
        self.db.dispose()


# The dependencies that do no I/O are `async def`: FastAPI runs a plain `def` dependency in its
# thread pool, and that hop costs more than the dependency itself on every request.


async def get_container(request: Request) -> Container:
    return request.app.state.container


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_settings(container: ContainerDep) -> Settings:
    return container.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
