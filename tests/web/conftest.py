"""Fixtures for the page tests: the real app on the test database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from imagestudio.app import create_app
from imagestudio.bootstrap import Container
from imagestudio.config import Settings, load_settings
from imagestudio.db import Database
from imagestudio.storage import storage_from_url
from tests.api.helpers import browser_client

# argon2 at its cheapest: these tests are about pages, not password cost.
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def make_app(db: Database, tmp_path: Path) -> Callable[..., tuple[FastAPI, Container]]:
    def make(**values: object) -> tuple[FastAPI, Container]:
        fields: dict = {"data_dir": tmp_path / "data", "secret_key": "test-secret", "signup_mode": "admin"}
        fields.update(FAST_HASHING)
        fields.update(values)
        settings: Settings = load_settings(**fields)
        container = Container(settings=settings, db=db, storage=storage_from_url(str(tmp_path / "storage")))
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
