"""Fixtures for the page tests (the app on the test database) and the browser tests (a live server per
database kind, and headless Chromium)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, sync_playwright

from imagestudio.app import create_app
from imagestudio.config import Settings, load_settings
from imagestudio.container import Container
from imagestudio.db import Database
from imagestudio.notify import NotificationHub
from imagestudio.storage import storage_from_url
from tests.api.helpers import browser_client
from tests.conftest import DATABASES, PostgresServer, make_migrated_database, require_service
from tests.web.live import CHROMIUM, CHROMIUM_ARGS, LiveServer, Visit, open_visit, running, studio_settings

# argon2 at its cheapest: these tests are about pages, not password cost.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_app(db: Database, hub: NotificationHub, tmp_path: Path) -> Callable[..., tuple[FastAPI, Container]]:
    def make(**values: object) -> tuple[FastAPI, Container]:
        fields: dict = {"data_dir": tmp_path / "data", "secret_key": "test-secret", "signup_mode": "admin"}
        fields.update(FAST_HASHING)
        fields.update(values)
        settings: Settings = load_settings(**fields)
        container = Container(settings=settings, db=db, storage=storage_from_url(str(tmp_path / "storage")), hub=hub)
        return create_app(container=container), container

    return make


@pytest.fixture
def app_and_container(make_app: Callable[..., tuple[FastAPI, Container]]) -> tuple[FastAPI, Container]:
    return make_app()


@pytest.fixture
def app(app_and_container: tuple[FastAPI, Container]) -> FastAPI:
    return app_and_container[0]


@pytest.fixture
def container(app_and_container: tuple[FastAPI, Container]) -> Container:
    return app_and_container[1]


@pytest.fixture
def anonymous(app: FastAPI) -> TestClient:
    return browser_client(app)


# ---- browser tests ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_service(Path(CHROMIUM).is_file(), f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def migrated_studio_database(
    kind: str, tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> str:
    """A new, migrated database of `kind` for a live studio."""
    url = make_migrated_database(kind, tmp_path_factory.mktemp("studio"), postgres_server)
    return url


@pytest.fixture(scope="module", params=DATABASES)
def studio(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[LiveServer]:
    """One running studio per database kind for a module's tests; each test makes its own accounts."""
    url = migrated_studio_database(request.param, tmp_path_factory, postgres_server)
    with running(studio_settings(url, tmp_path_factory.mktemp("studio-data"))) as server:
        yield server


@pytest.fixture
def visits(browser: Browser) -> Iterator[Callable[..., Visit]]:
    """visits(server, viewport=..., color_scheme=...) -> a fresh browser context on that server."""
    opened: list[Visit] = []

    def make(server: LiveServer, **options: object) -> Visit:
        visit = open_visit(browser, server, **options)  # type: ignore[arg-type]
        opened.append(visit)
        return visit

    yield make
    for visit in opened:
        visit.context.close()
