"""The README's start command, run for real in a clean data folder, answers healthy over HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from imagestudio import migrate


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_starts_on_the_embedded_default(tmp_path: Path) -> None:
    port = _free_port()
    data_dir = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGESTUDIO_")}
    env.update({"IMAGESTUDIO_DATA_DIR": str(data_dir), "IMAGESTUDIO_PORT": str(port)})
    imagestudio = Path(sys.executable).with_name("imagestudio")
    process = subprocess.Popen(
        [str(imagestudio), "serve"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert ready is not None, process.stdout.read().decode() if process.poll() is not None else "no answer"
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "storage": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json()["status"] == "ok"
    finally:
        process.terminate()
        process.wait(timeout=20)
    # Everything the embedded default needs lives in the data folder, created on first start.
    assert (data_dir / "imagestudio.db").exists()
    assert (data_dir / "storage").is_dir()
    assert (data_dir / "secret_key").stat().st_mode & 0o077 == 0
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{data_dir / 'imagestudio.db'}")
    try:
        assert migrate.is_up_to_date(engine)
    finally:
        engine.dispose()
