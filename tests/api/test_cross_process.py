"""Across processes, as deployed at scale: two `imagestudio serve` processes without workers and one
`imagestudio worker`, all on one PostgreSQL database and one storage folder. A generation created
through API process A is run by the worker, and its events stream live out of API process B."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from imagestudio.accounts import service
from imagestudio.accounts.service import Principal, expand_scopes
from imagestudio.config import load_settings
from imagestudio.db import make_database

FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(arguments: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    command = Path(sys.executable).with_name("imagestudio")
    handle = log.open("wb")
    return subprocess.Popen([str(command), *arguments], env=env, stdout=handle, stderr=subprocess.STDOUT)


def _wait_ready(base_url: str, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{base_url} exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{base_url} never became ready:\n{log.read_text()}")


def _wait_for_line(log: Path, text: str, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            pytest.fail(f"process exited early:\n{log.read_text()}")
        time.sleep(0.2)
    pytest.fail(f"no {text!r} in the log:\n{log.read_text()}")


def _events(lines: Iterator[str], until: str) -> list[dict]:
    events, data = [], None
    for line in lines:
        if line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
        elif line == "" and data is not None:
            events.append(data)
            if data["type"] == until:
                return events
            data = None
    return events


@pytest.mark.xdist_group("worker-processes")
def test_events_of_a_generation_made_through_one_api_process_stream_out_of_another(migrated_database, tmp_path) -> None:
    url = migrated_database("postgresql")
    settings = load_settings(database_url=url, data_dir=tmp_path / "data", secret_key="cross-process", **FAST_HASHING)
    database = make_database(url)
    try:
        with database.writing() as db:
            user = service.create_user(db, settings, email="pat@example.test", password="a long enough password")
            _, key = service.create_api_key(
                db,
                Principal(user=user, via="session", scopes=expand_scopes(["generate"])),
                name="cross-process",
                scopes=["read", "generate"],
                expires_at=None,
                rate_limit_per_minute=None,
            )
    finally:
        database.dispose()

    env = {name: value for name, value in os.environ.items() if not name.startswith("IMAGESTUDIO_")}
    env.update(
        {
            "IMAGESTUDIO_DATABASE_URL": url,
            "IMAGESTUDIO_STORAGE_URL": str(tmp_path / "storage"),
            "IMAGESTUDIO_DATA_DIR": str(tmp_path / "data"),
            "IMAGESTUDIO_SECRET_KEY": "cross-process",
            "IMAGESTUDIO_WORKERS": "0",
            "IMAGESTUDIO_LOG_LEVEL": "warning",
            # Streams wait this long between reads unless notified (heartbeats re-read too, so they wait
            # as long): only NOTIFY can make them quick.
            "IMAGESTUDIO_SSE_POLL_SECONDS": "600",
            "IMAGESTUDIO_SSE_HEARTBEAT_SECONDS": "600",
        }
    )
    ports = {name: _free_port() for name in ("a", "b")}
    logs = {name: tmp_path / f"{name}.log" for name in ("a", "b", "worker")}
    with ExitStack() as stack:
        processes = {
            name: _start(["serve", "--port", str(ports[name]), "--workers", "0"], env, logs[name]) for name in ports
        }
        processes["worker"] = _start(["worker", "--concurrency", "1", "--poll-interval", "60"], env, logs["worker"])
        for process in processes.values():
            stack.callback(process.wait, 30)
            stack.callback(process.terminate)
        api_a, api_b = (f"http://127.0.0.1:{ports[name]}" for name in ("a", "b"))
        for name, base_url in (("a", api_a), ("b", api_b)):
            _wait_ready(base_url, processes[name], logs[name])
        _wait_for_line(logs["worker"], "ready", processes["worker"])

        headers = {"Authorization": f"Bearer {key}"}
        with httpx.stream("GET", f"{api_b}/api/v1/events", headers=headers, timeout=30) as stream:
            assert stream.status_code == 200, stream.read()
            started = time.monotonic()
            created = httpx.post(
                f"{api_a}/api/v1/generations",
                json={"prompt": "two processes, one lighthouse", "width": 64, "height": 64},
                headers=headers,
                timeout=30,
            )
            assert created.status_code == 201, created.text
            generation_id = created.json()["id"]
            events = _events(stream.iter_lines(), until="succeeded")
            elapsed = time.monotonic() - started
        types = [event["type"] for event in events]
        assert types[0] == "queued" and types[-1] == "succeeded", types
        assert {event["generation_id"] for event in events} == {generation_id}
        # The worker (poll interval 60 s) and stream B (re-read every 60 s) were both woken by NOTIFY.
        assert elapsed < 20, f"took {elapsed:.1f}s: the notifications did not arrive"

        done = httpx.get(f"{api_b}/api/v1/generations/{generation_id}", headers=headers, timeout=30).json()
        assert done["status"] == "succeeded"
        image = httpx.get(f"{api_a}{done['outputs'][0]['content_url']}", headers=headers, timeout=30)
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        # A's own stream of that generation replays the same events and ends.
        with httpx.stream("GET", f"{api_a}/api/v1/generations/{generation_id}/events", headers=headers) as replay:
            assert [event["id"] for event in _events(replay.iter_lines(), until="succeeded")] == [
                event["id"] for event in events
            ]
