"""API benchmark: a real `imagestudio serve` subprocess, driven over HTTP with an API key.

What a program sees: submissions by `POST /api/v1/generations` with `Authorization: Bearer`, and
results over Server-Sent Events. Traffic goes only to 127.0.0.1; every loop is bounded in count and
in time.

    python bench/api.py                      # full table, written into docs/benchmarks.md
    python bench/api.py --quick --no-write   # a smaller run, printed only

For each database, worker layout, model and size:
- accepting: --count submissions from 4 client threads, accepted requests/s;
- throughput: from the first submission to the last `succeeded` seen on the `/events` stream;
- one at a time: submit, wait for its `succeeded` on the stream, p50/p95; pickup (created ->
  started) from the generation's own timestamps.
Then a session of --session-size generations: size and server time of its detail (first screen).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from engine import POSTGRES_ADMIN_URL, load_average, percentile, report_section  # noqa: E402

BEGIN_MARK = "<!-- api-benchmark:begin -->"
END_MARK = "<!-- api-benchmark:end -->"
CLIENT_THREADS = 4
PASSWORD = "benchmark password"
# No single wait of the benchmark lasts longer than this.
WAIT_LIMIT_S = 300.0
# How long `serve` has to answer /healthz after it was started.
START_TIMEOUT_S = 60.0
MODELS = {"solid": ("builtin", "solid"), "procedural": ("builtin", "builtin-procedural")}


@dataclass
class Row:
    database: str
    layout: str
    model: str
    size: int
    count: int
    accepted_per_s: float
    generations_per_s: float
    done_p50: float
    done_p95: float
    pickup_p50: float
    pickup_p95: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fresh_postgres_url() -> tuple[str, str]:
    name = f"bench_api_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    return name, f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def drop_postgres(name: str) -> None:
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Studio:
    """`imagestudio serve` (and optionally `imagestudio worker` processes) on a fresh database."""

    def __init__(self, database: str, serve_workers: int, worker_processes: int, profile: Path | None = None) -> None:
        self.profile = profile
        self.data_dir = Path(tempfile.mkdtemp(prefix="imagestudio-bench-api-"))
        self.pg_name: str | None = None
        if database == "postgresql":
            self.pg_name, database_url = fresh_postgres_url()
        else:
            database_url = f"sqlite:///{self.data_dir / 'studio.db'}"
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = os.environ | {
            "PYTHONPATH": str(ROOT / "src"),
            "IMAGESTUDIO_DATA_DIR": str(self.data_dir),
            "IMAGESTUDIO_DATABASE_URL": database_url,
            "IMAGESTUDIO_SECRET_KEY": "benchmark-secret-key",
            "IMAGESTUDIO_HOST": "127.0.0.1",
            "IMAGESTUDIO_PORT": str(self.port),
            "IMAGESTUDIO_LOG_LEVEL": "warning",
        }
        self.serve_workers = serve_workers
        self.worker_processes = worker_processes
        self.processes: list[subprocess.Popen] = []

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "from imagestudio.cli.main import main; main()", *args]

    def start(self, timeout: float = START_TIMEOUT_S) -> Studio:
        """Migrate, start `serve` and wait until it answers, then the worker processes. Whatever fails
        or times out on the way (Ctrl-C included), every process started so far is stopped and the
        database dropped before the error goes on."""
        try:
            # `serve` applies migrations by itself only on the embedded database.
            subprocess.run(self.command("db", "upgrade"), env=self.env, check=True, capture_output=True, timeout=300)
            serve = self.command("serve", "--workers", str(self.serve_workers))
            if self.profile:
                # Samples of the thread holding the interpreter lock, as collapsed stacks.
                # py-spy comes with the test extras, beside this interpreter (not always on PATH).
                beside = Path(sys.executable).with_name("py-spy")
                spy = str(beside) if beside.exists() else "py-spy"
                serve = [spy, "record", "--gil", "--format", "raw", "--rate", "200",
                         "-o", str(self.profile), "--", *serve]
            self.processes.append(subprocess.Popen(serve, env=self.env))
            deadline = time.monotonic() + timeout
            while True:
                try:
                    if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code < 500:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or self.processes[0].poll() is not None:
                    raise RuntimeError(f"imagestudio serve did not start within {timeout:g} s")
                time.sleep(0.1)
            for _ in range(self.worker_processes):
                self.processes.append(subprocess.Popen(self.command("worker"), env=self.env))
        except BaseException:
            self.stop()
            raise
        return self

    def api_key(self) -> str:
        email = f"bench-{uuid.uuid4().hex[:8]}@example.test"
        subprocess.run(
            self.command("users", "create", "--email", email, "--password", PASSWORD),
            env=self.env, check=True, capture_output=True, timeout=120,
        )
        # Signed in as a browser would be (cookie plus the cross-site request forgery headers).
        browser = {"X-Requested-With": "fetch", "Origin": self.base_url}
        with httpx.Client(base_url=self.base_url, headers=browser, timeout=30) as client:
            login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
            login.raise_for_status()
            created = client.post("/api/v1/api-keys", json={"name": "bench"})
            created.raise_for_status()
            return created.json()["key"]

    def stop(self) -> None:
        """Stops every process this studio started and drops its database; safe to call again."""
        processes, self.processes = self.processes, []
        if self.profile and processes and processes[0].poll() is None:
            # Stop the profiled server itself: py-spy writes its file when the process it runs ends.
            spy = processes[0]
            try:
                children = Path(f"/proc/{spy.pid}/task/{spy.pid}/children").read_text()
            except OSError:
                children = ""
            for pid in children.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spy.wait(timeout=60)
        for process in reversed(processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.pg_name:
            name, self.pg_name = self.pg_name, None
            drop_postgres(name)


class FinalEvents:
    """One `/api/v1/events` stream read in a thread: when each generation's `succeeded` arrived."""

    def __init__(self, base_url: str, key: str) -> None:
        self.seen: dict[str, float] = {}
        self.failed: list[str] = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._open = threading.Event()

    def start(self) -> FinalEvents:
        self._thread.start()
        if not self._open.wait(30):
            raise RuntimeError("the event stream did not open")
        return self

    def _read(self) -> None:
        try:
            self._follow()
        except httpx.HTTPError:
            if not self._stop.is_set():
                raise

    def _follow(self) -> None:
        # Each measurement has its own new user, so the stream starts from the beginning.
        with self._client.stream("GET", "/api/v1/events") as response:
            response.raise_for_status()
            self._open.set()
            for line in response.iter_lines():
                if self._stop.is_set():
                    return
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event["type"] in ("succeeded", "failed", "canceled"):
                    with self._changed:
                        self.seen[event["generation_id"]] = time.perf_counter()
                        if event["type"] != "succeeded":
                            self.failed.append(event["generation_id"])
                        self._changed.notify_all()

    def wait_for(self, ids: set[str], limit: float = WAIT_LIMIT_S) -> float:
        """Waits until every id is final; answers when the last one arrived."""
        deadline = time.monotonic() + limit
        with self._changed:
            while not ids <= self.seen.keys():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"{len(ids - self.seen.keys())} generations not final in {limit:.0f} s")
                self._changed.wait(remaining)
            if failed := ids & set(self.failed):
                raise RuntimeError(f"{len(failed)} generations did not succeed")
            return max(self.seen[i] for i in ids)

    def close(self) -> None:
        self._stop.set()
        self._client.close()


def generation_body(model: str, size: int, index: int, session_id: str | None = None) -> dict:
    provider, model_id = MODELS[model]
    return {
        "prompt": f"a lighthouse at dusk {index}", "type": "text2img", "provider": provider, "model": model_id,
        "width": size, "height": size, "session_id": session_id,
    }


def submit_many(base_url: str, key: str, bodies: list[dict]) -> tuple[list[str], float, float]:
    """Submits from CLIENT_THREADS threads; answers the ids, the start time and the accepting time."""
    chunks = [bodies[i::CLIENT_THREADS] for i in range(CLIENT_THREADS)]

    def run(chunk: list[dict]) -> list[str]:
        with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            ids = []
            for body in chunk:
                answer = client.post("/api/v1/generations", json=body)
                if answer.status_code != 201:
                    raise RuntimeError(f"submission refused: {answer.status_code} {answer.text[:300]}")
                ids.append(answer.json()["id"])
            return ids

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        ids = [i for chunk_ids in pool.map(run, chunks) for i in chunk_ids]
    return ids, started, time.perf_counter() - started


def pickups(client: httpx.Client, ids: list[str]) -> list[float]:
    values = []
    for generation_id in ids:
        body = client.get(f"/api/v1/generations/{generation_id}").json()
        created, started = (datetime.fromisoformat(body[k]) for k in ("created_at", "started_at"))
        values.append((started - created).total_seconds() * 1000)
    return values


def measure(studio: Studio, database: str, layout: str, model: str, size: int, count: int, single: int) -> Row:
    key = studio.api_key()
    events = FinalEvents(studio.base_url, key).start()
    try:
        # One generation first: the server builds its route tables and caches on its first requests.
        warm_up, _, _ = submit_many(studio.base_url, key, [generation_body(model, size, -1)])
        events.wait_for(set(warm_up))
        bodies = [generation_body(model, size, i) for i in range(count)]
        ids, started, accepting = submit_many(studio.base_url, key, bodies)
        last = events.wait_for(set(ids))
        throughput = count / (last - started)
        latencies = []
        single_ids = []
        with httpx.Client(base_url=studio.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            for i in range(single):
                sent = time.perf_counter()
                answer = client.post("/api/v1/generations", json=generation_body(model, size, i))
                answer.raise_for_status()
                generation_id = answer.json()["id"]
                latencies.append((events.wait_for({generation_id}, 60) - sent) * 1000)
                single_ids.append(generation_id)
            pickup = pickups(client, single_ids)
    finally:
        events.close()
    return Row(
        database, layout, model, size, count, count / accepting, throughput,
        statistics.median(latencies), percentile(latencies, 0.95),
        statistics.median(pickup), percentile(pickup, 0.95),
    )


def session_detail(studio: Studio, generations: int) -> tuple[int, float, float]:
    """A session of `generations` solid 64 px generations: bytes of its detail, server ms p50 and max."""
    key = studio.api_key()
    headers = {"Authorization": f"Bearer {key}"}
    events = FinalEvents(studio.base_url, key).start()
    try:
        with httpx.Client(base_url=studio.base_url, headers=headers, timeout=60) as client:
            session_id = client.post("/api/v1/sessions", json={"title": "bench"}).json()["id"]
            bodies = [generation_body("solid", 64, i, session_id) for i in range(generations)]
            ids, _, _ = submit_many(studio.base_url, key, bodies)
            events.wait_for(set(ids))
            times, size = [], 0
            for _ in range(10):
                sent = time.perf_counter()
                answer = client.get(f"/api/v1/sessions/{session_id}")
                times.append((time.perf_counter() - sent) * 1000)
                answer.raise_for_status()
                size = len(answer.content)
    finally:
        events.close()
    return size, statistics.median(times), max(times)


def table(rows: list[Row]) -> str:
    lines = [
        "| database | workers | model | size | accepted requests/s | generations/s"
        " | submit→succeeded (SSE) p50 / p95 ms | pickup p50 / p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.database} | {r.layout} | {r.model} | {r.size} px"
            f" | {r.accepted_per_s:.0f} | {r.generations_per_s:.0f}"
            f" | {r.done_p50:.1f} / {r.done_p95:.1f} | {r.pickup_p50:.1f} / {r.pickup_p95:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layouts", default="sqlite:1:0,sqlite:2:0,postgresql:0:2",
                        help="database:serve-workers:worker-processes, comma separated")
    parser.add_argument("--models", default="solid,procedural")
    parser.add_argument("--sizes", default="64,512")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--one-at-a-time", type=int, default=50)
    parser.add_argument("--session-size", type=int, default=500)
    parser.add_argument("--quick", action="store_true", help="100 at once, 20 one at a time, a 100-step session")
    parser.add_argument("--profile", type=Path, help="record `serve` with py-spy into this file (collapsed stacks)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    if args.quick:
        args.count, args.one_at_a_time, args.session_size = 100, 20, 100
    load_start = load_average()
    rows: list[Row] = []
    detail: tuple[int, float, float] | None = None
    for layout in args.layouts.split(","):
        database, serve_workers, processes = layout.split(":")
        label = f"serve {serve_workers}" + (f" + {processes} processes" if int(processes) else "")
        studio = Studio(database, int(serve_workers), int(processes), args.profile).start()
        try:
            for model in args.models.split(","):
                for size in (int(s) for s in args.sizes.split(",")):
                    row = measure(studio, database, label, model, size, args.count, args.one_at_a_time)
                    print(table([row]).splitlines()[-1], flush=True)
                    rows.append(row)
            if detail is None and database == "sqlite" and args.session_size:
                detail = session_detail(studio, args.session_size)
                print(f"session detail, {args.session_size} generations: {detail[0]} bytes,"
                      f" {detail[1]:.1f} ms p50, {detail[2]:.1f} ms max", flush=True)
        finally:
            studio.stop()
    lines = [
        "## Through the HTTP API (`python bench/api.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}. `imagestudio serve` in its own process on 127.0.0.1, default"
        f" configuration; {args.count} submissions by `POST /api/v1/generations` with an API key from"
        f" {CLIENT_THREADS} client threads, timed until the last `succeeded` arrived on `GET /api/v1/events`;"
        f" then {args.one_at_a_time} one at a time, each waited for on the same stream. `serve N` is"
        " `--workers N`; `+ P processes` are `imagestudio worker` processes beside it.",
        "",
        table(rows),
        "",
        (f"Session detail (`GET /api/v1/sessions/{{id}}`) of a session with {args.session_size} generations:"
         f" {detail[0] / 1024:.0f} KB, {detail[1]:.1f} ms p50 ({detail[2]:.1f} ms max) seen by the client"
         " over 10 requests." if detail else "Session detail: not measured in this run."),
    ]
    report_section(BEGIN_MARK, END_MARK, lines, load_start=load_start, write=not args.no_write)


if __name__ == "__main__":
    main()
