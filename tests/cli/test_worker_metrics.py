"""`imagestudio worker --metrics-port`: a worker process serves its own Prometheus metrics (pickup,
durations, heartbeats), since worker machines serve no HTTP API."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_worker_serves_its_metrics(tmp_path: Path, migrated_database) -> None:
    url = migrated_database("sqlite")
    port = _free_port()
    env = {
        **os.environ,
        "IMAGESTUDIO_DATA_DIR": str(tmp_path / "data"),
        "IMAGESTUDIO_DATABASE_URL": url,
        "IMAGESTUDIO_LEASE_SECONDS": "0.6",
    }
    command = [
        sys.executable,
        "-c",
        "from imagestudio.cli.main import main; main()",
        "worker",
        "--metrics-port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        assert "ready" in process.stdout.readline()
        body = ""
        deadline = time.monotonic() + 30
        while "imagestudio_worker_heartbeat_timestamp_seconds{" not in body and time.monotonic() < deadline:
            time.sleep(0.2)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                body = response.read().decode()
        assert "imagestudio_worker_heartbeat_timestamp_seconds{" in body
        assert "imagestudio_generation_pickup_seconds" in body
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
