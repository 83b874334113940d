"""Exports of one's own work: a session, a project, everything (API and CLI), on both databases."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from click.testing import CliRunner

from imagestudio.cli.main import cli
from tests.api.helpers import API, assert_problem, image_bytes, run_queue, upload


def _zip(response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    return zipfile.ZipFile(io.BytesIO(response.content))


def _documents(archive: zipfile.ZipFile) -> list[dict]:
    names = [n for n in archive.namelist() if n.endswith(".json") and "/step-" in n]
    return sorted((json.loads(archive.read(n)) for n in names), key=lambda d: (d["created_at"], d["id"]))


def _session_with_lineage(account, container) -> dict:
    session = account.client.post(f"{API}/sessions", json={"title": "Foxes & friends"}).json()
    turns = f"{API}/sessions/{session['id']}/messages"
    assert (
        account.client.post(turns, json={"content": "a red fox", "mode": "fresh", "num_images": 2}).status_code == 201
    )
    run_queue(container)
    assert account.client.post(turns, json={"content": "in snow", "mode": "iterate"}).status_code == 201
    run_queue(container)
    return session


def test_session_export_holds_originals_and_reproducible_documents(accounts, container) -> None:
    alice = accounts.make()
    session = _session_with_lineage(alice, container)
    archive = _zip(alice.client.get(f"{API}/sessions/{session['id']}/export"))
    first, second = _documents(archive)
    assert (first["step"], first["prompt"], first["status"], first["num_images"]) == (1, "a red fox", "succeeded", 2)
    assert second["parent_generation_id"] == first["id"] and second["type"] == "img2img"
    assert second["inputs"] and second["inputs"][0]["role"] == "init"
    assert first["provider"] == "builtin" and first["model"] and first["params"]["seed"] is not None
    assert first["created_at"] and first["completed_at"] and first["duration_ms"] is not None
    # Every output is in the zip, byte for byte the stored original.
    for document in (first, second):
        for output in document["outputs"]:
            stored = alice.client.get(f"{API}/assets/{output['asset_id']}/content").content
            assert archive.read(output["file"]) == stored
    index = json.loads(archive.read("index.json"))
    assert (index["generations"], index["images"]) == (2, 3)
    assert index["sessions"][0]["title"] == "Foxes & friends"


def test_project_and_everything_exports(accounts, container) -> None:
    alice = accounts.make()
    project = alice.client.post(f"{API}/projects", json={"name": "Winter"}).json()
    inside = alice.client.post(f"{API}/sessions", json={"title": "in project", "project_id": project["id"]}).json()
    outside = alice.client.post(f"{API}/sessions", json={"title": "elsewhere"}).json()
    for session in (inside, outside):
        turn = {"content": f"for {session['title']}", "mode": "fresh"}
        assert alice.client.post(f"{API}/sessions/{session['id']}/messages", json=turn).status_code == 201
    loose = {"prompt": "no session", "width": 64, "height": 64}
    assert alice.client.post(f"{API}/generations", json=loose).status_code == 201
    run_queue(container)
    project_zip = _zip(alice.client.get(f"{API}/projects/{project['id']}/export"))
    assert [d["prompt"] for d in _documents(project_zip)] == ["for in project"]
    everything = _zip(alice.client.get(f"{API}/me/export"))
    assert sorted(d["prompt"] for d in _documents(everything)) == ["for elsewhere", "for in project", "no session"]
    assert any(name.startswith("no-session/") for name in everything.namelist())


def test_uploads_used_as_inputs_are_included(accounts, container) -> None:
    alice = accounts.make()
    source = upload(alice.client, image_bytes(size=(40, 40))).json()
    body = {"type": "img2img", "prompt": "paint it", "source_asset_id": source["id"]}
    assert alice.client.post(f"{API}/generations", json=body).status_code == 201
    run_queue(container)
    archive = _zip(alice.client.get(f"{API}/me/export"))
    (document,) = _documents(archive)
    (item,) = document["inputs"]
    assert archive.read(item["file"]) == alice.client.get(f"{API}/assets/{source['id']}/content").content


def test_nobody_exports_another_users_work(accounts, container) -> None:
    alice, bob = accounts.make(), accounts.make()
    session = _session_with_lineage(alice, container)
    project = alice.client.post(f"{API}/projects", json={"name": "private"}).json()
    assert_problem(bob.client.get(f"{API}/sessions/{session['id']}/export"), 404)
    assert_problem(bob.client.get(f"{API}/projects/{project['id']}/export"), 404)
    bobs = _zip(bob.client.get(f"{API}/me/export"))
    assert _documents(bobs) == [] and json.loads(bobs.read("index.json"))["sessions"] == []


def test_export_command(accounts, container, tmp_path: Path, monkeypatch) -> None:
    alice = accounts.make()
    _session_with_lineage(alice, container)
    monkeypatch.setenv("IMAGESTUDIO_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("IMAGESTUDIO_DATABASE_URL", container.settings.resolved_database_url)
    monkeypatch.setenv("IMAGESTUDIO_STORAGE_URL", f"file://{tmp_path / 'storage'}")
    out = tmp_path / "alice.zip"
    result = CliRunner().invoke(cli, ["export", "--user", alice.email.upper(), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 generations and 3 images" in result.output
    assert len(_documents(zipfile.ZipFile(out))) == 2
    missing = CliRunner().invoke(cli, ["export", "--user", "nobody@example.test", "--out", str(out)])
    assert missing.exit_code == 1 and "no account" in missing.output
