"""Load benchmark: many live-event subscribers on one server process, and the session pages under
many concurrent clients. A real `imagestudio serve` subprocess on 127.0.0.1; every loop is bounded.

    python bench/load.py                      # both, written into docs/benchmarks.md
    python bench/load.py --subscribers 200 --no-write

- Subscribers: --subscribers connections hold `GET /api/v1/events` open (one user, API key) on a
  server with one worker; then one generation is submitted, --rounds times. For each round: how many
  subscribers saw its `succeeded`, and when (from the submission), and the server's resident memory.
- Sessions: --clients concurrent clients, each making --requests requests that alternate between
  `GET /api/v1/sessions` and the detail of one of --sessions sessions of --steps generations each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from engine import load_average, percentile, report_section  # noqa: E402

from api import FinalEvents, Studio, generation_body, submit_many  # noqa: E402

BEGIN_MARK = "<!-- load-benchmark:begin -->"
END_MARK = "<!-- load-benchmark:end -->"
# No single wait lasts longer than this.
WAIT_LIMIT_S = 120.0


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Subscriber:
    """One `GET /api/v1/events` stream on a plain socket (an HTTP client per stream would measure the
    client): notes when each generation's final event arrives."""

    def __init__(self, port: int, key: str) -> None:
        self.port = port
        self.key = key
        self.final_at: dict[str, float] = {}
        self.arrived = asyncio.Event()
        self.open = asyncio.Event()
        self.failed: str | None = None

    async def run(self) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        except OSError as error:
            self.failed = f"connect: {error}"
            self.open.set()
            return
        writer.write(
            (
                "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {self.key}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        )
        try:
            status = await reader.readline()
            if b" 200 " not in status:
                self.failed = status.decode(errors="replace").strip() or "no answer"
                return
            while (await reader.readline()).strip():
                pass
            self.open.set()
            # The body is chunked; every event's lines arrive whole, so chunk sizes are simply skipped.
            while line := await reader.readline():
                if not line.startswith(b"data:"):
                    continue
                event = json.loads(line[5:])
                if event["type"] in ("succeeded", "failed", "canceled"):
                    self.final_at[event["generation_id"]] = time.perf_counter()
                    self.arrived.set()
        except (OSError, asyncio.IncompleteReadError) as error:
            self.failed = f"read: {error}"
        finally:
            self.open.set()
            writer.close()


@dataclass
class SubscriberRound:
    received: int
    within_1s: int
    p50_ms: float
    p95_ms: float
    max_ms: float


async def _subscribers(studio: Studio, key: str, count: int, rounds: int) -> tuple[int, list[SubscriberRound], float]:
    pid = studio.processes[0].pid
    subscribers = [Subscriber(studio.port, key) for _ in range(count)]
    tasks = [asyncio.create_task(s.run()) for s in subscribers]
    peak = resident_mb(pid)
    try:
        for batch in range(0, count, 100):
            await asyncio.wait_for(asyncio.gather(*(s.open.wait() for s in subscribers[batch : batch + 100])), 60)
        connected = sum(1 for s in subscribers if s.failed is None)
        results = []
        async with httpx.AsyncClient(base_url=studio.base_url, headers={"Authorization": f"Bearer {key}"}) as client:
            # Round 0 warms the server up (first-use costs of the worker and the streams); not reported.
            for index in range(rounds + 1):
                sent = time.perf_counter()
                answer = await client.post("/api/v1/generations", json=generation_body("solid", 64, index))
                answer.raise_for_status()
                generation_id = answer.json()["id"]
                deadline = time.monotonic() + WAIT_LIMIT_S
                while time.monotonic() < deadline:
                    peak = max(peak, resident_mb(pid))
                    waiting = [s for s in subscribers if s.failed is None and generation_id not in s.final_at]
                    if not waiting:
                        break
                    await asyncio.sleep(0.05)
                delays = [(s.final_at[generation_id] - sent) * 1000 for s in subscribers if generation_id in s.final_at]
                if index == 0:
                    continue
                results.append(
                    SubscriberRound(
                        received=len(delays),
                        within_1s=sum(1 for d in delays if d <= 1000),
                        p50_ms=statistics.median(delays) if delays else float("nan"),
                        p95_ms=percentile(delays, 0.95) if delays else float("nan"),
                        max_ms=max(delays, default=float("nan")),
                    )
                )
                await asyncio.sleep(0.5)
        peak = max(peak, resident_mb(pid))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return connected, results, peak


@dataclass
class EndpointFigures:
    name: str
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    max_ms: float


async def _sessions_load(
    studio: Studio, key: str, session_ids: list[str], clients: int, requests: int
) -> tuple[list[EndpointFigures], float]:
    times: dict[str, list[float]] = {"GET /api/v1/sessions": [], "GET /api/v1/sessions/{id}": []}
    errors = {name: 0 for name in times}

    async def client_loop(number: int) -> None:
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=studio.base_url, headers=headers, timeout=60) as client:
            for i in range(requests):
                if i % 2 == 0:
                    name, path = "GET /api/v1/sessions", "/api/v1/sessions"
                else:
                    session_id = session_ids[(number + i) % len(session_ids)]
                    name, path = "GET /api/v1/sessions/{id}", f"/api/v1/sessions/{session_id}"
                sent = time.perf_counter()
                try:
                    answer = await client.get(path)
                    ok = answer.status_code == 200
                except httpx.HTTPError:
                    ok = False
                times[name].append((time.perf_counter() - sent) * 1000)
                errors[name] += 0 if ok else 1

    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(client_loop(n) for n in range(clients))), WAIT_LIMIT_S * 5)
    elapsed = time.perf_counter() - started
    figures = [
        EndpointFigures(
            name, len(values), errors[name], statistics.median(values), percentile(values, 0.95), max(values)
        )
        for name, values in times.items()
    ]
    return figures, sum(f.requests for f in figures) / elapsed


def _make_sessions(studio: Studio, key: str, sessions: int, steps: int) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"}
    events = FinalEvents(studio.base_url, key).start()
    try:
        ids: list[str] = []
        all_generations: set[str] = set()
        with httpx.Client(base_url=studio.base_url, headers=headers, timeout=60) as client:
            for number in range(sessions):
                session_id = client.post("/api/v1/sessions", json={"title": f"load {number}"}).json()["id"]
                ids.append(session_id)
                bodies = [generation_body("solid", 64, i, session_id) for i in range(steps)]
                created, _, _ = submit_many(studio.base_url, key, bodies)
                all_generations.update(created)
        events.wait_for(all_generations)
    finally:
        events.close()
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="requests per client")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--steps", type=int, default=20, help="generations per session")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    load_start = load_average()
    studio = Studio("sqlite", 1, 0).start()
    try:
        key = studio.api_key()
        connected, rounds, peak = asyncio.run(_subscribers(studio, key, args.subscribers, args.rounds))
        print(f"subscribers connected {connected}/{args.subscribers}, peak RSS {peak:.0f} MB", flush=True)
        for r in rounds:
            print(f"  received {r.received}, within 1 s {r.within_1s}, p50 {r.p50_ms:.0f} ms, p95 {r.p95_ms:.0f} ms,"
                  f" max {r.max_ms:.0f} ms", flush=True)
        session_key = studio.api_key()
        session_ids = _make_sessions(studio, session_key, args.sessions, args.steps)
        figures, rate = asyncio.run(_sessions_load(studio, session_key, session_ids, args.clients, args.requests))
        for f in figures:
            print(f"  {f.name}: {f.requests} requests, {f.errors} errors, p50 {f.p50_ms:.1f} ms,"
                  f" p95 {f.p95_ms:.1f} ms, max {f.max_ms:.1f} ms", flush=True)
    finally:
        studio.stop()
    lines = [
        "## Under load (`python bench/load.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')}. One `imagestudio serve --workers 1` process, SQLite, default"
        " configuration, clients on the same machine.",
        "",
        f"**Live events**: {args.subscribers} subscribers hold `GET /api/v1/events` open ({connected} connected);"
        f" one 64 px generation is submitted, {args.rounds} times. Server resident memory at its peak:"
        f" **{peak:.0f} MB**.",
        "",
        "| round | subscribers that saw `succeeded` | within 1 s of the submission | p50 / p95 / max ms |",
        "|---|---|---|---|",
        *(
            f"| {n} | {r.received} | {r.within_1s} | {r.p50_ms:.0f} / {r.p95_ms:.0f} / {r.max_ms:.0f} |"
            for n, r in enumerate(rounds, start=1)
        ),
        "",
        f"**Session pages**: {args.clients} concurrent clients, {args.requests} requests each, alternating the"
        f" list and the detail of {args.sessions} sessions of {args.steps} generations; {rate:.0f} requests/s"
        " in all.",
        "",
        "| request | requests | errors | p50 / p95 / max ms |",
        "|---|---|---|---|",
        *(
            f"| `{f.name}` | {f.requests} | {f.errors} | {f.p50_ms:.1f} / {f.p95_ms:.1f} / {f.max_ms:.1f} |"
            for f in figures
        ),
    ]
    report_section(BEGIN_MARK, END_MARK, lines, load_start=load_start, write=not args.no_write)


if __name__ == "__main__":
    main()
