"""A process starts even when a frozen peer holds the providers rows.

A worker cut off by a partition (or stopped) in the middle of writing those rows keeps their locks
until PostgreSQL ends its session. The rows only describe the providers, and the model refresher
writes them again, so a new process must not die at start on the lock wait."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from imagestudio.bootstrap import build
from imagestudio.config import Settings
from tests.conftest import PostgresServer, require_service


def _settings(url: str, data: Path) -> Settings:
    return Settings(_env_file=None, database_url=url, data_dir=data, db_lock_timeout_seconds=0.5)  # type: ignore[call-arg]


def test_a_process_starts_while_a_frozen_peer_holds_the_providers_rows(
    postgres_server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_service(postgres_server.error is None, postgres_server.error or "")
    url = postgres_server.create_migrated_database()
    build(_settings(url, tmp_path / "first")).close()  # the rows exist, as in a running studio
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as peer:
        peer.execute("SELECT name FROM providers FOR UPDATE")  # and a frozen peer holds them
        with caplog.at_level(logging.WARNING, logger="imagestudio.bootstrap"):
            container = build(_settings(url, tmp_path / "second"))
        container.close()
        peer.rollback()
    assert "providers not recorded at start, the database is busy" in caplog.text
    assert "canceling statement due to lock timeout" in caplog.text
    # Once the peer is gone, starting writes them again.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="imagestudio.bootstrap"):
        build(_settings(url, tmp_path / "third")).close()
    assert "providers not recorded" not in caplog.text

