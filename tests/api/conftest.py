"""Fixtures for API tests: an app bound to the test database (SQLite and PostgreSQL) and a temp storage folder.

- `settings`: cheap password hashing, open sign-up; override with `make_settings(**values)`.
- `container`: Container(settings, db, storage, registry) for the test database; the registry holds
  the built-in renderer (also written to the providers table). No worker runs unless a test starts one.
- `app`: create_app(container=container).
- `client`: an anonymous browser-like client (same-origin headers, no login).
- `accounts`: `accounts.make(admin=False)` -> a signed-in Account (see tests/api/helpers.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from imagestudio.app import create_app
from imagestudio.config import Settings, load_settings
from imagestudio.container import Container
from imagestudio.db import Database
from imagestudio.notify import NotificationHub
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.storage import storage_from_url
from tests.api.helpers import Accounts, browser_client

# argon2 at its cheapest: the tests exercise the logic, not the cost.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}
# Event streams end quickly so a test reading one to the end never waits long.
SHORT_STREAMS = {"sse_heartbeat_seconds": 0.2, "sse_poll_seconds": 0.2, "sse_max_seconds": 1.0}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**values: object) -> Settings:
        fields: dict = {"data_dir": tmp_path / "data", "secret_key": "test-secret", "signup_mode": "open"}
        fields.update(FAST_HASHING)
        fields.update(SHORT_STREAMS)
        fields.update(values)
        return load_settings(**fields)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def container(db: Database, hub: NotificationHub, settings: Settings, tmp_path: Path) -> Container:
    # The settings name the test database, as a real deployment's would (the lifespan's
    # notification listener connects to it on PostgreSQL).
    settings.database_url = db.engine.url.render_as_string(hide_password=False)
    registry = ProviderRegistry.from_settings(settings)
    registry.sync_to_database(db)
    storage = storage_from_url(str(tmp_path / "storage"))
    return Container(settings=settings, db=db, storage=storage, registry=registry, hub=hub)


@pytest.fixture
def app(container: Container) -> FastAPI:
    return create_app(container=container)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return browser_client(app)


@pytest.fixture
def accounts(app: FastAPI, container: Container) -> Accounts:
    return Accounts(app, container)
