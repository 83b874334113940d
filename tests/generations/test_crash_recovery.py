"""Crash recovery: `imagestudio worker` killed with SIGKILL at random moments, again and again.

After the dust settles every generation must be final, none stuck in processing, each succeeded one
must have exactly its outputs (one asset and one stored object per batch index, checksums matching),
storage must hold nothing no asset points at, and no generation may have used more attempts than
allowed, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from imagestudio.assets.images import sha256_hex
from imagestudio.config import Settings
from imagestudio.db import make_database
from imagestudio.generations.events import events_after
from imagestudio.models import FINAL_STATUSES, Asset, Generation
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.storage.local import TEMP_PREFIX, LocalStorage
from tests import factories
from tests.conftest import DATABASES
from tests.generations.conftest import submit

GENERATIONS = 56
MIN_KILLS = 10
LEASE_SECONDS = 0.6
MAX_ATTEMPTS = 6
READY_TIMEOUT = 30.0
TEMP_MAX_AGE_SECONDS = 1.0


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from imagestudio.cli.main import main; main()", "worker", "--concurrency", "3",
             "--poll-interval", "0.05", "--backoff-base", "0.05", "--grace", "5"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )  # fmt: skip

    def wait_ready(self) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if "ready" in line:
                return
            if not line and self.process.poll() is not None:
                break
        raise AssertionError(f"the worker did not start; see {self.log.name}")

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.log.close()

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.log.close()
        return code


# Each case runs several worker processes flat out: one case at a time among the test processes.
@pytest.mark.slow
@pytest.mark.xdist_group("worker-processes")
@pytest.mark.parametrize("kind", DATABASES)
def test_sigkilled_workers_lose_and_duplicate_nothing(kind: str, migrated_database, tmp_path: Path) -> None:
    url = migrated_database(kind)
    db = make_database(url)
    storage_root = tmp_path / "storage"
    storage = LocalStorage(storage_root)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", default_max_attempts=MAX_ATTEMPTS)  # type: ignore[call-arg]
    from imagestudio.providers.builtin import BuiltinRenderer

    registry = ProviderRegistry()
    registry.register(BuiltinRenderer())
    rng = random.Random(20261122)
    try:
        with db.writing() as session:
            owners = [factories.make_user(session).id for _ in range(4)]
        ids = [
            submit(
                db,
                owners[n % 4],
                registry,
                settings,
                provider="builtin",
                prompt=f"crash test {n}: a lighthouse at dusk",
                num_images=rng.randint(1, 3),
                width=rng.choice((384, 512)),
                height=rng.choice((384, 512)),
                steps=rng.randint(8, 20),
                seed=n,
            )
            for n in range(GENERATIONS)
        ]
        env = {
            **os.environ,
            "IMAGESTUDIO_DATABASE_URL": url,
            "IMAGESTUDIO_STORAGE_URL": storage_root.as_uri(),
            "IMAGESTUDIO_DATA_DIR": str(tmp_path / "data"),
            "IMAGESTUDIO_LEASE_SECONDS": str(LEASE_SECONDS),
            "IMAGESTUDIO_DEFAULT_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "IMAGESTUDIO_MAX_RUNNING_PER_USER": "3",
            # Far above one write's duration, far below the test's: what a kill left gets swept.
            "IMAGESTUDIO_STORAGE_TEMP_MAX_AGE_SECONDS": str(TEMP_MAX_AGE_SECONDS),
        }
        log = tmp_path / "worker.log"
        kills = interrupted = 0

        def in_flight() -> int:
            with db.reading() as session:
                return len(session.scalars(select(Generation.id).where(Generation.status == "processing")).all())

        def unfinished() -> int:
            final = [str(status) for status in FINAL_STATUSES]
            with db.reading() as session:
                return len(session.scalars(select(Generation.id).where(Generation.status.not_in(final))).all())

        def temp_files() -> list[Path]:
            return list(storage_root.rglob(f"{TEMP_PREFIX}*"))

        # Temp files a kill left behind; the next worker's maintenance sweeps them once old enough.
        left_by_kills: set[Path] = set()
        while kills < MIN_KILLS and unfinished():
            worker = WorkerProcess(env, log)
            worker.wait_ready()
            time.sleep(rng.uniform(0.05, 0.5))
            worker.kill()
            kills += 1
            interrupted += in_flight()
            left_by_kills.update(temp_files())

        # A kill lands between a temp file's write and its rename only now and then; leave one such
        # file for sure, so the sweep below is always exercised.
        planted = storage_root / "outputs" / f"{TEMP_PREFIX}planted0000000000"
        planted.parent.mkdir(parents=True, exist_ok=True)
        planted.write_bytes(b"half a PNG")
        left_by_kills.add(planted)
        # A last worker, left alone, finishes the work (after the leases of the killed ones expire).
        worker = WorkerProcess(env, log)
        worker.wait_ready()
        deadline = time.monotonic() + 90
        # Done when all work is final and the maintenance has swept what the kills left behind.
        while unfinished() or _cleanup_pending(db) or temp_files():
            assert time.monotonic() < deadline, f"work did not finish, or {len(temp_files())} temp files stayed"
            time.sleep(0.1)
        assert worker.terminate() == 0  # SIGTERM is a clean, graceful stop

        with db.reading() as session:
            generations = {g.id: g for g in session.scalars(select(Generation).where(Generation.id.in_(ids)))}
            assets = session.scalars(select(Asset).where(Asset.kind == "output")).all()
        statuses = Counter(g.status for g in generations.values())
        by_generation: dict = {}
        for asset in assets:
            by_generation.setdefault(asset.generation_id, []).append(asset)
        keys = set(storage.list(""))
        referenced = {asset.storage_key for asset in assets}

        lost = [g.id for g in generations.values() if g.status not in {str(s) for s in FINAL_STATUSES}]
        lost += [
            g.id
            for g in generations.values()
            if g.status == "succeeded" and len(by_generation.get(g.id, [])) != g.num_images
        ]
        duplicated = sum(max(0, len(items) - generations[gid].num_images) for gid, items in by_generation.items())
        orphaned = sorted(keys - referenced)
        leftovers = temp_files()
        summary = {
            "database": kind,
            "generations": len(generations),
            "kills": kills,
            "interrupted_in_flight": interrupted,
            "statuses": dict(statuses),
            "retried": sum(1 for g in generations.values() if g.attempt > 1),
            "max_attempt": max(g.attempt for g in generations.values()),
            "lost": len(lost),
            "duplicated": duplicated,
            "orphaned": len(orphaned),
            "temp_files_left_by_kills": len(left_by_kills),
            "temp_files_left": len(leftovers),
        }
        print("crash recovery:", json.dumps(summary))

        assert len(generations) == GENERATIONS
        assert lost == [] and duplicated == 0 and orphaned == [] and leftovers == []
        assert statuses["processing"] == 0 and statuses["queued"] == 0
        assert all(g.attempt <= g.max_attempts for g in generations.values())
        assert all(g.running_slot is None for g in generations.values())
        assert kills >= MIN_KILLS and interrupted > 0
        # Lost work is retried, not written off: work a killed worker held came back to the queue
        # and succeeded on a later attempt. A generation may fail only once every attempt is spent.
        assert summary["retried"] > 0
        assert all(g.status == "succeeded" for g in generations.values() if g.attempt < g.max_attempts)
        retried_events = {g.id: _retrying_events(db, g.id) for g in generations.values() if g.attempt > 1}
        assert all(count == generations[gid].attempt - 1 for gid, count in retried_events.items())
        for generation in generations.values():
            outputs = sorted(by_generation.get(generation.id, []), key=lambda asset: asset.batch_index)
            if generation.status == "succeeded":
                assert [asset.batch_index for asset in outputs] == list(range(generation.num_images))
                for asset in outputs:
                    assert sha256_hex(storage.get(asset.storage_key)) == asset.sha256
                    assert asset.thumbnail_key is None  # made by its first request, not the worker
            else:
                assert outputs == []
            # The event log tells the same story: numbered without gaps, ending in the final status.
            events = events_after(db, generation_id=generation.id)
            assert [event.sequence for event in events] == list(range(1, generation.event_seq + 1))
            assert events[-1].type == generation.status
    finally:
        db.dispose()


def _retrying_events(db, generation_id) -> int:
    return sum(1 for event in events_after(db, generation_id=generation_id) if event.type == "retrying")


def _cleanup_pending(db) -> bool:
    with db.reading() as session:
        return (
            session.scalars(select(Generation.id).where(Generation.cleanup_pending.is_(True)).limit(1)).first()
            is not None
        )
