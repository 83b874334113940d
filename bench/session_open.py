"""Opening a long session: bytes and server time of the session page's first screen.

A session of --steps chat turns is built through the real chat service and a real worker (the
built-in provider's plain-colour model, 64 px; turns iterate from the latest image, every tenth
starts afresh and every seventh branches from an earlier image). Then the requests the page makes
for its first screen are timed inside the server process (an ASGI wrapper around the app: from
the request's arrival to the last byte of the answer, middleware included), --repeat times each:

- `GET /api/v1/sessions/{id}`: the session, its newest steps and the complete lineage;
- `GET /api/v1/sessions/{id}/steps?cursor=...`: the next older steps, as the page asks for them
  when the person scrolls up (timed, not part of the first screen).

    python bench/session_open.py                 # SQLite and PostgreSQL, table written to docs/benchmarks.md
    python bench/session_open.py --steps 100 --no-write
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from engine import Target, load_average, percentile, report_section  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import event  # noqa: E402
from support import run_queue  # noqa: E402

from imagestudio.accounts import service as accounts  # noqa: E402
from imagestudio.app import create_app  # noqa: E402
from imagestudio.config import load_settings  # noqa: E402
from imagestudio.container import Container  # noqa: E402
from imagestudio.providers.registry import ProviderRegistry  # noqa: E402

BEGIN_MARK = "<!-- session-open-benchmark:begin -->"
END_MARK = "<!-- session-open-benchmark:end -->"
PASSWORD = "benchmark password"
ROUND = 25  # turns posted between two runs of the queue


class ServerClock:
    """ASGI middleware: the time from a request's arrival to the last byte of its answer."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last_ms = 0.0
        # CPU time of the whole process over the same span: the client waits meanwhile, so this is the
        # server's work, and a loaded machine disturbs it far less than the time on the clock.
        self.last_cpu_ms = 0.0

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, cpu = time.perf_counter(), time.process_time()

        async def timed_send(message: dict) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.last_ms = (time.perf_counter() - started) * 1000
                self.last_cpu_ms = (time.process_time() - cpu) * 1000

        await self.app(scope, receive, timed_send)


@dataclass
class Timing:
    name: str
    bytes: int
    # As sent to a client that accepts gzip (browsers do): what travels.
    wire_bytes: int
    statements: int
    p50: float
    p95: float
    cpu_p50: float
    cpu_p95: float


@dataclass
class Result:
    database: str
    steps: int
    timings: list[Timing]


def build_session(client: TestClient, container: Container, steps: int) -> str:
    """A session of `steps` image turns, made as the studio makes them; answers its id."""
    session_id = client.post("/api/v1/sessions", json={"title": "A long session"}).json()["id"]
    outputs: list[str] = []
    for start in range(0, steps, ROUND):
        for index in range(start, min(steps, start + ROUND)):
            body: dict[str, Any] = {
                "content": f"a lighthouse at dusk, take {index}",
                "mode": "fresh" if index % 10 == 0 else "iterate",
                "provider": "builtin",
                "model": "builtin-procedural",
                "width": 64,
                "height": 64,
            }
            if index % 7 == 3 and index % 10 and outputs:
                body["source_asset_id"] = outputs[len(outputs) // 2]
            answer = client.post(f"/api/v1/sessions/{session_id}/messages", json=body)
            if answer.status_code != 201:
                raise RuntimeError(answer.text)
        run_queue(container)
        page = client.get(f"/api/v1/generations?session_id={session_id}&limit=5").json()
        outputs.extend(output["id"] for generation in page["items"] for output in generation["outputs"])
    return session_id


def time_request(client: TestClient, clock: ServerClock, container: Container, path: str, repeat: int) -> Timing:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):
            statements.append(statement)

    times, cpu, size, wire = [], [], 0, 0
    client.get(path).raise_for_status()  # warm: the first request builds the routes' tables
    event.listen(container.db.engine, "before_cursor_execute", count)
    try:
        for _ in range(repeat):
            statements.clear()
            answer = client.get(path)
            answer.raise_for_status()
            times.append(clock.last_ms)
            cpu.append(clock.last_cpu_ms)
            size, wire = len(answer.content), answer.num_bytes_downloaded
    finally:
        event.remove(container.db.engine, "before_cursor_execute", count)
    name = path.split("?")[0].replace(path.split("/")[4], "{id}")
    return Timing(
        name, size, wire, len(statements), statistics.median(times), percentile(times, 0.95),
        statistics.median(cpu), percentile(cpu, 0.95),
    )  # fmt: skip


def measure(kind: str, steps: int, repeat: int) -> Result:
    target = Target(kind)
    try:
        settings = load_settings(
            data_dir=target.folder, secret_key="bench", argon2_time_cost=1, argon2_memory_kib=8,
            argon2_parallelism=1, database_url=target.url,
        )  # fmt: skip
        registry = ProviderRegistry.from_settings(settings)
        registry.sync_to_database(target.db)
        container = Container(
            settings=settings, db=target.db, storage=target.storage, registry=registry, hub=target.hub
        )
        clock = ServerClock(create_app(container=container))
        with target.db.writing() as db:
            email = accounts.create_user(db, settings, email="bench@example.test", password=PASSWORD).email
        headers = {"Origin": "http://testserver", "X-Requested-With": "fetch", "Sec-Fetch-Site": "same-origin"}
        with TestClient(clock, base_url="http://testserver", headers=headers) as client:
            client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}).raise_for_status()
            made = time.perf_counter()
            session_id = build_session(client, container, steps)
            print(f"{kind}: {steps} turns made in {time.perf_counter() - made:.1f} s", flush=True)
            detail_path = f"/api/v1/sessions/{session_id}"
            timings = [time_request(client, clock, container, detail_path, repeat)]
            cursor = client.get(detail_path).json().get("steps_cursor")
            if cursor:
                older = f"/api/v1/sessions/{session_id}/steps?cursor={cursor}"
                timings.append(time_request(client, clock, container, older, repeat))
        return Result(kind, steps, timings)
    finally:
        target.close()


def table(results: list[Result]) -> str:
    lines = [
        "| database | steps | request | JSON | sent (gzip) | SQL statements | server ms p50 / p95"
        " | server CPU ms p50 / p95 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for t in result.timings:
            lines.append(
                f"| {result.database} | {result.steps} | `GET {t.name}` | {t.bytes / 1024:.1f} KB"
                f" | {t.wire_bytes / 1024:.1f} KB"
                f" | {t.statements} | {t.p50:.1f} / {t.p95:.1f} | {t.cpu_p50:.1f} / {t.cpu_p95:.1f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    args = parser.parse_args()
    load_start = load_average()
    results = []
    for kind in args.databases.split(","):
        result = measure(kind, args.steps, args.repeat)
        results.append(result)
        for t in result.timings:
            print(f"{kind}: GET {t.name}: {t.bytes} bytes ({t.wire_bytes} sent), {t.statements} statements,"
                  f" server {t.p50:.1f} ms p50 / {t.p95:.1f} ms p95,"
                  f" CPU {t.cpu_p50:.1f} ms p50 / {t.cpu_p95:.1f} ms p95", flush=True)  # fmt: skip
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')}, {args.repeat} requests each, timed inside the server process.",
        "",
        table(results),
    ]
    report_section(BEGIN_MARK, END_MARK, lines, load_start=load_start, write=not args.no_write)


if __name__ == "__main__":
    main()
