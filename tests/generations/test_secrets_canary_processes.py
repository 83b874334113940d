"""Provider keys never reach the output of real processes.

`imagestudio generate` and `imagestudio worker` run as subprocesses with a canary OpenAI key, against
the fake OpenAI on a real port. The key is wrong, so the fake answers 401 and echoes it the way
OpenAI does (a key this short is echoed whole). Everything the processes print to stdout and stderr,
at debug log level, and every stored error must be free of the canary, while the fake must have
received it (so its absence means something).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from imagestudio.accounts import provider_keys
from imagestudio.config import load_settings
from imagestudio.db import make_database
from imagestudio.models import Generation
from imagestudio.providers.registry import ProviderRegistry
from tests import factories
from tests.conftest import DATABASES
from tests.fakes.openai import FakeOpenAI, masked_key
from tests.fakes.server import serve
from tests.generations.conftest import submit

# Short enough that the fake (like OpenAI) echoes it whole in its 401 message.
CANARY = "sk-c4n4ry7q"
STUDIO_SECRET = "a-studio-secret-for-the-canary-000000"
COMMAND = [sys.executable, "-c", "from imagestudio.cli.main import main; main()"]
DEADLINE_SECONDS = 60.0


def _environment(url: str, tmp_path: Path, fake_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "IMAGESTUDIO_DATABASE_URL": url,
        "IMAGESTUDIO_STORAGE_URL": (tmp_path / "storage").as_uri(),
        "IMAGESTUDIO_DATA_DIR": str(tmp_path / "data"),
        "IMAGESTUDIO_OPENAI_API_KEY": CANARY,
        "IMAGESTUDIO_OPENAI_BASE_URL": f"{fake_url}/v1",
        "IMAGESTUDIO_LOG_LEVEL": "debug",
        "IMAGESTUDIO_DEFAULT_MAX_ATTEMPTS": "1",
    }


def _key_was_sent(fake: FakeOpenAI) -> bool:
    return any(request.headers.get("authorization") == f"Bearer {CANARY}" for request in fake.requests)


def test_the_fake_echoes_a_short_wrong_key_whole_and_masks_a_long_one() -> None:
    assert masked_key(CANARY) == CANARY
    long_key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"
    assert masked_key(long_key) == "sk-proj-" + "*" * (len(long_key) - 12) + "0123"


@pytest.mark.parametrize("kind", DATABASES)
def test_generate_and_worker_print_no_key(kind: str, migrated_database, tmp_path: Path) -> None:
    url = migrated_database(kind)
    fake = FakeOpenAI(api_key="sk-the-key-the-service-expects-0000")
    with serve(fake.app) as server:
        env = _environment(url, tmp_path, server.base_url)

        # One generation in the foreground: the command fails with the provider's (redacted) message.
        command = [*COMMAND, "generate", "--provider", "openai", "--quiet", "--out", str(tmp_path / "out"), "a kite"]
        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=DEADLINE_SECONDS)
        assert finished.returncode != 0, finished.stdout
        assert "Incorrect API key" in finished.stderr, finished.stderr
        assert _key_was_sent(fake)
        assert CANARY not in finished.stdout and CANARY not in finished.stderr

        # One generation run by a worker process, from the queue.
        db = make_database(url)
        try:
            with db.writing() as session:
                owner = factories.make_user(session).id
            settings = load_settings(
                _env_file=None, database_url=url, openai_api_key=CANARY, openai_base_url=f"{server.base_url}/v1"
            )
            registry = ProviderRegistry.from_settings(settings)
            generation_id = submit(db, owner, registry, settings, provider="openai", prompt="a kite", width=1024,
                                   height=1024)  # fmt: skip
            requests_before = len(fake.requests)
            stdout, stderr = _run_worker(env, db, generation_id)
            with db.reading() as session:
                generation = session.get(Generation, generation_id)
                assert generation is not None
                stored = f"{generation.error_code} {generation.error_message}"
        finally:
            db.dispose()
    assert len(fake.requests) > requests_before and _key_was_sent(fake)
    assert "ready" in stdout
    assert generation.status == "failed" and "Incorrect API key" in stored
    assert CANARY not in stored
    assert CANARY not in stdout, stdout
    assert CANARY not in stderr, stderr


def _run_worker(env: dict[str, str], db, generation_id) -> tuple[str, str]:
    """Run `imagestudio worker` until the generation is final; its (stdout, stderr)."""
    worker = subprocess.Popen(
        [*COMMAND, "worker", "--poll-interval", "0.05", "--grace", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while _status(db, generation_id) not in ("failed", "succeeded"):
            assert worker.poll() is None, "the worker exited early"
            assert time.monotonic() < deadline, "the worker did not finish the generation"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGTERM)
        stdout, stderr = worker.communicate(timeout=DEADLINE_SECONDS)
    return stdout, stderr


@pytest.mark.parametrize("kind", DATABASES)
def test_a_worker_prints_no_users_own_key(kind: str, migrated_database, tmp_path: Path) -> None:
    """A user's own key, stored sealed, opened by a worker process for their generation only: the
    service refuses it and echoes it whole, and nothing the worker prints or stores holds it."""
    url = migrated_database(kind)
    fake = FakeOpenAI(api_key="sk-the-key-the-service-expects-0000")
    with serve(fake.app) as server:
        env = _environment(url, tmp_path, server.base_url)
        del env["IMAGESTUDIO_OPENAI_API_KEY"]  # the studio has no key: only the user's can serve
        env["IMAGESTUDIO_SECRET_KEY"] = STUDIO_SECRET
        db = make_database(url)
        try:
            settings = load_settings(
                _env_file=None, database_url=url, secret_key=STUDIO_SECRET, openai_base_url=f"{server.base_url}/v1"
            )
            with db.writing() as session:
                owner = factories.make_user(session).id
                provider_keys.set_policy(session, "openai", allow_user_keys=True, studio_key_fallback=False)
                provider_keys.store_key(session, provider_keys.studio_sealer(settings), owner, "openai", CANARY)
            registry = ProviderRegistry.from_settings(settings)
            generation_id = submit(db, owner, registry, settings, provider="openai", prompt="a kite", width=1024,
                                   height=1024)  # fmt: skip
            stdout, stderr = _run_worker(env, db, generation_id)
            with db.reading() as session:
                generation = session.get(Generation, generation_id)
                assert generation is not None
                stored = f"{generation.error_code} {generation.error_message}"
        finally:
            db.dispose()
    assert _key_was_sent(fake)
    assert generation.status == "failed" and "Incorrect API key" in stored
    assert CANARY not in stored
    assert CANARY not in stdout, stdout
    assert CANARY not in stderr, stderr


def _status(db, generation_id) -> str:
    with db.reading() as session:
        return session.scalar(select(Generation.status).where(Generation.id == generation_id)) or ""
