"""Fixtures for mail delivery: the test database (SQLite and PostgreSQL) and a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagestudio.config import Settings, load_settings
from tests.mailserver import MailServer


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**values: object) -> Settings:
        fields: dict = {
            "data_dir": tmp_path / "data",
            "secret_key": "test-secret",
            "public_url": "http://studio.test",
            "smtp_timeout_seconds": 5,
        }
        fields.update(values)
        return load_settings(**fields)

    return make
