"""Cleanup passes (expired logins, unused uploads, objects no row names, outputs past retention) and
`imagestudio cleanup [--dry-run]`, on SQLite and PostgreSQL. Time is moved by passing `now`."""

from __future__ import annotations

import os
import time
import uuid
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from imagestudio.cli.main import cli
from imagestudio.models import Asset, AuthSession, ChatSession, Generation
from imagestudio.models.types import utcnow
from imagestudio.operations.cleanup import run_cleanup
from tests.api.helpers import API, image_bytes, run_queue, upload

LATER = timedelta(days=2)


def _count(container, model, *where) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(model).where(*where))


def _age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_expired_logins_go_and_live_ones_stay(accounts, container) -> None:
    alice = accounts.make()
    accounts.make()
    assert _count(container, AuthSession) == 2
    with container.db.writing() as db:
        session = db.scalars(select(AuthSession).where(AuthSession.user_id == uuid.UUID(alice.id))).one()
        session.expires_at = utcnow() - timedelta(minutes=1)
        db.commit()
    dry = run_cleanup(container.db, container.storage, container.settings, dry_run=True)
    assert dry.expired_logins == 1 and _count(container, AuthSession) == 2
    report = run_cleanup(container.db, container.storage, container.settings)
    assert report.expired_logins == 1 and _count(container, AuthSession) == 1
    assert alice.client.get(f"{API}/me").status_code == 401


def test_unused_uploads_go_after_the_retention_and_used_ones_stay(accounts, container) -> None:
    alice = accounts.make()
    unused = upload(alice.client, image_bytes(size=(30, 30))).json()
    used = upload(alice.client, image_bytes(size=(31, 31))).json()
    body = {"type": "img2img", "prompt": "paint", "source_asset_id": used["id"]}
    assert alice.client.post(f"{API}/generations", json=body).status_code == 201
    run_queue(container)
    # Young uploads are kept whatever happens to them.
    assert run_cleanup(container.db, container.storage, container.settings).stale_uploads == []
    report = run_cleanup(container.db, container.storage, container.settings, now=utcnow() + LATER)
    assert report.stale_uploads == [unused["id"]]
    assert alice.client.get(f"{API}/assets/{unused['id']}").status_code == 404
    with container.db.reading() as db:
        kept = db.get(Asset, uuid.UUID(used["id"]))
        assert kept is not None and container.storage.exists(kept.storage_key)
    assert not any(key.endswith(unused["id"]) for key in container.storage.list())


def test_objects_no_row_names_go_after_the_grace(accounts, container, tmp_path: Path) -> None:
    alice = accounts.make()
    assert alice.client.post(f"{API}/generations", json={"prompt": "x", "width": 64, "height": 64}).status_code == 201
    run_queue(container)
    container.storage.put("outputs/stray/0.png", b"left by a crashed writer", "image/png")
    container.storage.put("outputs/fresh/0.png", b"its row is being committed", "image/png")
    _age(tmp_path / "storage" / "outputs" / "stray" / "0.png", 2 * 3600)
    dry = run_cleanup(container.db, container.storage, container.settings, dry_run=True)
    assert dry.orphan_objects == ["outputs/stray/0.png"] and container.storage.exists("outputs/stray/0.png")
    report = run_cleanup(container.db, container.storage, container.settings)
    assert report.orphan_objects == ["outputs/stray/0.png"]
    assert not container.storage.exists("outputs/stray/0.png")
    assert container.storage.exists("outputs/fresh/0.png")
    # Every object a row names is still there.
    with container.db.reading() as db:
        for asset in db.scalars(select(Asset)):
            assert container.storage.exists(asset.storage_key)


def test_retention_removes_old_outputs_outside_projects(accounts, container, make_settings) -> None:
    alice = accounts.make()
    project = alice.client.post(f"{API}/projects", json={"name": "keep"}).json()
    kept_session = alice.client.post(f"{API}/sessions", json={"title": "kept", "project_id": project["id"]}).json()
    loose_session = alice.client.post(f"{API}/sessions", json={"title": "loose"}).json()
    for session in (kept_session, loose_session):
        turn = {"content": f"in {session['title']}", "mode": "fresh"}
        assert alice.client.post(f"{API}/sessions/{session['id']}/messages", json=turn).status_code == 201
    run_queue(container)
    # Off by default: nothing is removed however old.
    assert (
        run_cleanup(
            container.db, container.storage, container.settings, now=utcnow() + timedelta(days=400)
        ).expired_outputs
        == []
    )
    settings = make_settings(retention_days=30, database_url=container.settings.database_url)
    assert (
        run_cleanup(container.db, container.storage, settings, now=utcnow() + timedelta(days=29)).expired_outputs == []
    )
    report = run_cleanup(container.db, container.storage, settings, now=utcnow() + timedelta(days=31))
    assert len(report.expired_outputs) == 1
    with container.db.reading() as db:
        loose = db.get(ChatSession, uuid.UUID(loose_session["id"]))
        kept = db.get(ChatSession, uuid.UUID(kept_session["id"]))
        assert (loose.image_count, loose.thumbnail_asset_id) == (0, None)
        assert kept.image_count == 1 and kept.thumbnail_asset_id is not None
        # The generation rows stay: prompts, settings and lineage are history.
        assert db.scalar(select(func.count()).select_from(Generation)) == 2


def test_cleanup_command(accounts, container, tmp_path: Path, monkeypatch) -> None:
    alice = accounts.make()
    unused = upload(alice.client, image_bytes(size=(33, 33))).json()
    with container.db.writing() as db:
        db.get(Asset, uuid.UUID(unused["id"])).created_at = utcnow() - timedelta(days=3)
        db.commit()
    monkeypatch.setenv("IMAGESTUDIO_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("IMAGESTUDIO_DATABASE_URL", container.settings.resolved_database_url)
    monkeypatch.setenv("IMAGESTUDIO_STORAGE_URL", f"file://{tmp_path / 'storage'}")
    dry = CliRunner().invoke(cli, ["cleanup", "--dry-run", "--verbose"])
    assert dry.exit_code == 0, dry.output
    assert "would remove 1 unused uploads" in dry.output and f"upload {unused['id']}" in dry.output
    assert _count(container, Asset) == 1
    done = CliRunner().invoke(cli, ["cleanup"])
    assert done.exit_code == 0 and "removed 1 unused uploads" in done.output
    assert _count(container, Asset) == 0


def test_sessions_past_their_expiry_are_archived(accounts, container) -> None:
    alice = accounts.make()
    soon = (utcnow() + timedelta(hours=1)).isoformat()
    expiring = alice.client.post(f"{API}/sessions", json={"title": "temp", "expires_at": soon}).json()
    lasting = alice.client.post(f"{API}/sessions", json={"title": "keep"}).json()
    assert expiring["expires_at"] is not None and lasting["expires_at"] is None
    assert run_cleanup(container.db, container.storage, container.settings).archived_sessions == 0
    report = run_cleanup(container.db, container.storage, container.settings, now=utcnow() + timedelta(hours=2))
    assert report.archived_sessions == 1
    with container.db.reading() as db:
        assert db.get(ChatSession, uuid.UUID(expiring["id"])).archived_at is not None
        assert db.get(ChatSession, uuid.UUID(lasting["id"])).archived_at is None


def test_expiry_is_validated_and_can_be_cleared(accounts) -> None:
    alice = accounts.make()
    session = alice.client.post(f"{API}/sessions", json={"title": "s"}).json()
    for value in ("tomorrow", "2026-01-01T00:00:00", "9999-99-99T00:00:00Z"):
        response = alice.client.patch(f"{API}/sessions/{session['id']}", json={"expires_at": value})
        assert response.status_code == 422, value
    later = "2030-01-01T00:00:00+02:00"
    assert (
        alice.client.patch(f"{API}/sessions/{session['id']}", json={"expires_at": later})
        .json()["expires_at"]
        .startswith("2029-12-31T22:00:00")
    )
    assert alice.client.patch(f"{API}/sessions/{session['id']}", json={"expires_at": None}).json()["expires_at"] is None


def test_one_process_runs_the_passes_per_interval(accounts, container) -> None:
    from imagestudio.operations.cleanup import run_if_due

    now = utcnow()
    first = run_if_due(container.db, container.storage, container.settings, now=now)
    again = run_if_due(container.db, container.storage, container.settings, now=now + timedelta(seconds=1))
    later = run_if_due(
        container.db,
        container.storage,
        container.settings,
        now=now + timedelta(seconds=container.settings.cleanup_interval_seconds + 1),
    )
    assert first is not None and again is None and later is not None


def test_the_workers_maintenance_runs_the_passes(accounts, container) -> None:
    alice = accounts.make()
    unused = upload(alice.client, image_bytes(size=(34, 34))).json()
    with container.db.writing() as db:
        db.get(Asset, uuid.UUID(unused["id"])).created_at = utcnow() - timedelta(days=3)
        db.commit()
    # A queued generation makes run_queue start a worker, whose maintenance loop runs at start.
    assert alice.client.post(f"{API}/generations", json={"prompt": "x", "width": 64, "height": 64}).status_code == 201
    run_queue(container)
    assert _count(container, Asset, Asset.kind == "upload") == 0


def test_spent_links_and_sent_mail_go_after_a_month(accounts, container) -> None:
    from imagestudio.models import AccountToken, OutboxMail

    alice = accounts.make()
    now = utcnow()
    with container.db.writing() as db:
        db.add(
            AccountToken(purpose="password_reset", token_hash="a" * 64, email=alice.email, expires_at=now, used_at=now)
        )
        db.add(
            AccountToken(
                purpose="password_reset", token_hash="b" * 64, email=alice.email, expires_at=now + timedelta(days=90)
            )
        )
        db.add(
            OutboxMail(kind="reset", to_address=alice.email, subject="s", text_body="t", html_body="h", status="sent")
        )
        db.add(OutboxMail(kind="reset", to_address=alice.email, subject="s", text_body="t", html_body="h"))
        db.commit()
    assert run_cleanup(container.db, container.storage, container.settings).spent_records == 0
    later = now + timedelta(days=31)
    report = run_cleanup(container.db, container.storage, container.settings, now=later, dry_run=True)
    assert report.spent_records == 2
    assert run_cleanup(container.db, container.storage, container.settings, now=later).spent_records == 2
    # The live link and the queued mail stay.
    assert _count(container, AccountToken) == 1 and _count(container, OutboxMail) == 1
