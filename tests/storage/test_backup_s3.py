"""Backup and restore with S3-compatible storage (a real moto server) on both databases: objects come
from the bucket into the archive and go back into another bucket, byte for byte."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from imagestudio.app import create_app
from imagestudio.config import load_settings
from imagestudio.container import Container
from imagestudio.db import Database, make_database
from imagestudio.models import Asset
from imagestudio.operations.backup import restore_backup, write_backup
from imagestudio.providers.registry import ProviderRegistry
from tests.api.helpers import API, Accounts, bearer_client, run_queue

from .test_s3 import _make_storage

FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}


def test_round_trip_through_s3(db: Database, moto_endpoint: str, fresh_database, tmp_path: Path, hub) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    settings = load_settings(data_dir=tmp_path / "data", secret_key="s", database_url=url, **FAST_HASHING)
    registry = ProviderRegistry.from_settings(settings)
    registry.sync_to_database(db)
    source = Container(settings=settings, db=db, storage=_make_storage(moto_endpoint), registry=registry, hub=hub)
    app = create_app(container=source)
    alice = Accounts(app, source).make()
    key = alice.api_key()
    body = {"prompt": "a harbour", "width": 64, "height": 64, "num_images": 2}
    assert alice.client.post(f"{API}/generations", json=body).status_code == 201
    run_queue(source)
    before = bearer_client(app, key).get(f"{API}/generations").json()
    # One thumbnail asked for (made and kept), one never: the backup holds what exists.
    outputs = before["items"][0]["outputs"]
    thumbnail = alice.client.get(outputs[0]["thumbnail_url"]).content
    archive = tmp_path / "s3.zip"
    manifest = write_backup(db.engine, source.storage, archive)
    assert len(manifest.objects) == 3 and not manifest.missing_objects

    target_db = make_database(fresh_database("postgresql" if db.dialect == "postgresql" else "sqlite"))
    target_storage = _make_storage(moto_endpoint)
    try:
        restore_backup(archive, target_db.engine, target_storage)
        with target_db.reading() as session:
            for asset in session.scalars(select(Asset)):
                assert target_storage.get(asset.storage_key) == source.storage.get(asset.storage_key)
        target = Container(
            settings=settings.model_copy(update={"database_url": target_db.engine.url.render_as_string(False)}),
            db=target_db,
            storage=target_storage,
            registry=registry,
            hub=hub,
        )
        restored = create_app(container=target)
        restored_client = bearer_client(restored, key)
        assert restored_client.get(f"{API}/generations").json() == before
        assert restored_client.get(outputs[0]["thumbnail_url"]).content == thumbnail
        assert restored_client.get(outputs[1]["thumbnail_url"]).headers["content-type"] == "image/webp"
    finally:
        target_db.dispose()
