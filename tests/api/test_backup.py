"""Backup and restore: round trips on SQLite and PostgreSQL (and across them), compared by the API's
answers before and after; a backup taken while generations run; damaged archives and non-empty
targets refused; the CLI commands."""

from __future__ import annotations

import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from imagestudio.app import create_app
from imagestudio.cli.main import cli
from imagestudio.container import Container
from imagestudio.db import make_database
from imagestudio.models import Asset, Generation, User
from imagestudio.operations.backup import BackupError, read_manifest, restore_backup, write_backup
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.storage import storage_from_url
from tests.api.helpers import API, PASSWORD, bearer_client, browser_client, image_bytes, log_in, run_queue, upload
from tests.conftest import DATABASES


def _make_content(app, accounts, container) -> dict[str, Any]:
    """Two users with sessions, chat turns with lineage, an upload used as a source, and API keys."""
    alice, bob = accounts.make(), accounts.make(admin=True)
    key = alice.api_key()
    session = alice.client.post(f"{API}/sessions", json={"title": "round trip"}).json()
    source = upload(alice.client, image_bytes(size=(64, 48))).json()
    turns = f"{API}/sessions/{session['id']}/messages"
    assert alice.client.post(turns, json={"content": "a red fox", "mode": "fresh"}).status_code == 201
    run_queue(container)
    assert alice.client.post(turns, json={"content": "make it blue", "mode": "iterate"}).status_code == 201
    edit = {"type": "img2img", "prompt": "a painting", "source_asset_id": source["id"], "session_id": session["id"]}
    assert alice.client.post(f"{API}/generations", json=edit).status_code == 201
    bob.client.post(f"{API}/generations", json={"prompt": "bob's", "width": 64, "height": 64, "num_images": 2})
    run_queue(container)
    return {"alice": alice, "bob": bob, "key": key, "session_id": session["id"]}


def _answers(client: TestClient, session_id: str) -> dict[str, Any]:
    """What the API says about everything of a user: the things a restore must keep exactly."""
    answers: dict[str, Any] = {}
    for path in ("/me", "/sessions", f"/sessions/{session_id}", f"/sessions/{session_id}/messages", "/generations"):
        response = client.get(API + path)
        assert response.status_code == 200, response.text
        answers[path] = response.json()
    for generation in answers["/generations"]["items"]:
        for output in generation["outputs"]:
            content = client.get(f"{API}/assets/{output['id']}/content")
            assert content.status_code == 200
            answers[output["id"]] = content.content
    return answers


def _restored_app(container: Container, url: str, storage_dir: Path) -> tuple[Any, Container]:
    settings = container.settings.model_copy(update={"database_url": url})
    target = Container(
        settings=settings,
        db=make_database(url),
        storage=storage_from_url(str(storage_dir)),
        registry=ProviderRegistry.from_settings(settings),
    )
    return create_app(container=target), target


@pytest.mark.parametrize("target_kind", DATABASES)
def test_round_trip_answers_exactly_as_before(
    app, accounts, container, fresh_database, tmp_path: Path, target_kind: str
) -> None:
    made = _make_content(app, accounts, container)
    alice = made["alice"]
    before = _answers(bearer_client(app, made["key"]), made["session_id"])
    archive = tmp_path / "studio.zip"
    manifest = write_backup(container.db.engine, container.storage, archive)
    assert manifest.tables["generations"]["rows"] == 4 and not manifest.missing_objects

    url = fresh_database(target_kind)
    restored, target = _restored_app(container, url, tmp_path / "restored-storage")
    restore_backup(archive, target.db.engine, target.storage)
    try:
        # The same API key, login cookie and password work, and every answer is the same.
        assert _answers(bearer_client(restored, made["key"]), made["session_id"]) == before
        cookie_client = browser_client(restored, cookies=alice.client.cookies)
        assert cookie_client.get(f"{API}/me").json()["email"] == alice.email
        assert log_in(restored, made["bob"].email, PASSWORD).get(f"{API}/me").status_code == 200
        # The restored studio keeps working: new rows get fresh ids (sequences were moved on).
        response = bearer_client(restored, made["key"]).post(
            f"{API}/generations", json={"prompt": "after restore", "width": 64, "height": 64}
        )
        assert response.status_code == 201, response.text
        run_queue(target)
        final = bearer_client(restored, made["key"]).get(f"{API}/generations/{response.json()['id']}").json()
        assert final["status"] == "succeeded"
    finally:
        target.db.dispose()


def test_a_backup_taken_while_generations_run_is_consistent(
    accounts, container, fresh_database, tmp_path: Path, database_kind: str
) -> None:
    alice = accounts.make()
    for index in range(12):
        body = {"prompt": f"busy {index}", "width": 64, "height": 64, "num_images": 2}
        assert alice.client.post(f"{API}/generations", json=body).status_code == 201
    worker = threading.Thread(target=run_queue, args=(container, 60.0))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with container.db.reading() as db:
                if db.scalar(select(func.count()).select_from(Asset).where(Asset.kind == "output")):
                    break
            time.sleep(0.01)
        archive = tmp_path / "busy.zip"
        write_backup(container.db.engine, container.storage, archive)
    finally:
        worker.join()

    url = fresh_database(database_kind)
    target_db = make_database(url)
    target_storage = storage_from_url(str(tmp_path / "restored"))
    try:
        restore_backup(archive, target_db.engine, target_storage)
        with target_db.reading() as db:
            assets = db.scalars(select(Asset)).all()
            # Every row's files are in the restored storage, and every success has all its outputs.
            for asset in assets:
                assert target_storage.exists(asset.storage_key), asset.storage_key
            for generation in db.scalars(select(Generation).where(Generation.status == "succeeded")):
                outputs = [asset for asset in assets if asset.generation_id == generation.id]
                assert len(outputs) == generation.num_images
            assert db.scalar(select(func.count()).select_from(Generation)) == 12
    finally:
        target_db.dispose()


def test_a_damaged_archive_is_refused_before_anything_is_written(
    app, accounts, container, fresh_database, tmp_path: Path
) -> None:
    _make_content(app, accounts, container)
    archive = tmp_path / "good.zip"
    write_backup(container.db.engine, container.storage, archive)
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(damaged, "w") as copy:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.startswith("objects/outputs/"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            copy.writestr(item, data)
    url = fresh_database("sqlite")
    target_db = make_database(url)
    try:
        with pytest.raises(BackupError, match="checksum"):
            restore_backup(damaged, target_db.engine, storage_from_url(str(tmp_path / "never")))
        assert not (tmp_path / "never").exists() or not any((tmp_path / "never").iterdir())
    finally:
        target_db.dispose()


def test_a_database_with_data_is_kept_unless_replaced(app, accounts, container, tmp_path: Path) -> None:
    made = _make_content(app, accounts, container)
    archive = tmp_path / "studio.zip"
    write_backup(container.db.engine, container.storage, archive)
    accounts.make()  # the live database changes after the backup
    with pytest.raises(BackupError, match="already holds data"):
        restore_backup(archive, container.db.engine, container.storage)
    restore_backup(archive, container.db.engine, container.storage, replace=True)
    with container.db.reading() as db:
        assert db.scalar(select(func.count()).select_from(User)) == 2
    assert _answers(bearer_client(app, made["key"]), made["session_id"])["/me"]["email"] == made["alice"].email


def test_backup_and_restore_commands(app, accounts, container, fresh_database, tmp_path: Path, monkeypatch) -> None:
    made = _make_content(app, accounts, container)
    source_url = container.settings.resolved_database_url
    source_storage = tmp_path / "storage"
    monkeypatch.setenv("IMAGESTUDIO_DATA_DIR", str(tmp_path / "cli-data"))
    monkeypatch.setenv("IMAGESTUDIO_DATABASE_URL", source_url)
    monkeypatch.setenv("IMAGESTUDIO_STORAGE_URL", f"file://{source_storage}")
    archive = tmp_path / "cli.zip"
    result = CliRunner().invoke(cli, ["backup", str(archive)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(archive) as opened:
        manifest = read_manifest(opened)
    assert manifest.tables["users"]["rows"] == 2

    target_url = fresh_database("sqlite")
    monkeypatch.setenv("IMAGESTUDIO_DATABASE_URL", target_url)
    monkeypatch.setenv("IMAGESTUDIO_STORAGE_URL", f"file://{tmp_path / 'cli-restored'}")
    result = CliRunner().invoke(cli, ["restore", str(archive)])
    assert result.exit_code == 0, result.output
    again = CliRunner().invoke(cli, ["restore", str(archive)])
    assert again.exit_code == 1 and "already holds data" in again.output
    restored, target = _restored_app(container, target_url, tmp_path / "cli-restored")
    try:
        assert _answers(bearer_client(restored, made["key"]), made["session_id"]) == _answers(
            bearer_client(app, made["key"]), made["session_id"]
        )
    finally:
        target.db.dispose()
