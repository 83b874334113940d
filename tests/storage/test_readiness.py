"""Readiness on S3 and a process configured for PostgreSQL and S3: /readyz writes to the bucket and
logs why it is not ready; nothing is created in a local data folder, and the link-signing key must
be given (servers share it)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imagestudio.app import create_app
from imagestudio.bootstrap import ConfigurationError, build
from imagestudio.config import Settings
from imagestudio.container import Container
from imagestudio.db import Database
from imagestudio.storage.s3 import PROBE_PREFIX
from tests.conftest import PostgresServer
from tests.storage.test_s3 import ACCESS_KEY, SECRET_KEY, _bucket_name, _make_storage


def test_readyz_writes_to_the_bucket_and_logs_why_it_is_not_ready(
    db: Database, moto_endpoint: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = _make_storage(moto_endpoint, create_bucket=False)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", secret_key="readiness")  # type: ignore[call-arg]
    client = TestClient(create_app(container=Container(settings=settings, db=db, storage=storage)))

    with caplog.at_level(logging.INFO, logger="imagestudio.app"):
        for _ in range(2):
            answer = client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["checks"] == {"database": "ok", "storage": "unavailable"}
        # Logged once with the reason, not at every probe; the caller is not told the reason.
        failures = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
        assert len(failures) == 1 and "storage check failed" in failures[0] and storage.bucket in failures[0]
        assert storage.bucket not in answer.text

        storage.ensure_bucket()
        # With versioning on, the probe's write and its deletion both leave a trace.
        storage.client.put_bucket_versioning(Bucket=storage.bucket, VersioningConfiguration={"Status": "Enabled"})
        answer = client.get("/readyz")
        assert answer.status_code == 200 and answer.json()["checks"] == {"database": "ok", "storage": "ok"}
        assert any("ready again: storage" in record.getMessage() for record in caplog.records)
    # The probe wrote an object and removed it.
    versions = storage.client.list_object_versions(Bucket=storage.bucket)
    [written] = versions.get("Versions", [])
    [removed] = versions.get("DeleteMarkers", [])
    assert written["Key"].startswith(PROBE_PREFIX) and removed["Key"] == written["Key"] and removed["IsLatest"]
    assert list(storage.list()) == []


def test_a_process_on_postgresql_and_s3_creates_no_data_folder(
    postgres_server: PostgresServer, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_server.create_migrated_database()
    monkeypatch.chdir(tmp_path)
    storage_url = (
        f"s3://{_bucket_name()}?endpoint_url={moto_endpoint}&region=us-east-1"
        f"&access_key={ACCESS_KEY}&secret_key={SECRET_KEY}&create_bucket=true"
    )
    unsigned = Settings(_env_file=None, database_url=url, storage_url=storage_url)  # type: ignore[call-arg]
    # Servers must share the key that signs asset links: none generated per machine, a clear refusal.
    with pytest.raises(ConfigurationError, match="IMAGESTUDIO_SECRET_KEY"):
        build(unsigned)
    settings = Settings(_env_file=None, database_url=url, storage_url=storage_url, secret_key="shared")  # type: ignore[call-arg]
    container = build(settings)
    try:
        container.storage.check()
    finally:
        container.close()
    assert list(tmp_path.iterdir()) == []

    # With a local part (here the storage), the data folder is where it belongs.
    local = Settings(_env_file=None, database_url=url, data_dir=tmp_path / "data")  # type: ignore[call-arg]
    build(local).close()
    assert (tmp_path / "data").is_dir()
