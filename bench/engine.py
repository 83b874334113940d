"""Engine benchmark: generations per second end to end, and latency one at a time.

End to end means what a user's request costs: create (validate, insert, queued event), claim,
render with the built-in renderer, encode the PNG (with metadata), store it, record assets, events
and success. Everything is durable: a real database and real files. (Thumbnails are made by their
first request, not by the worker, so they are not part of a generation's cost here.)

    python bench/engine.py                      # full table, written into docs/benchmarks.md
    python bench/engine.py --quick --no-write   # a smaller run, printed only

Throughput submits --count generations at once (one transaction each, as API requests would) and
times until the last one succeeded. Latency submits one at a time and waits for each: submit ->
succeeded, and pickup (created -> started, from the database's own timestamps).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

import PIL  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from imagestudio import migrate  # noqa: E402
from imagestudio.assets.images import encode_png, sha256_hex  # noqa: E402
from imagestudio.config import Settings  # noqa: E402
from imagestudio.db import Database, make_database  # noqa: E402
from imagestudio.generations import fenced, queue  # noqa: E402
from imagestudio.generations.fenced import StoredOutput  # noqa: E402
from imagestudio.generations.outputs import RenderFacts, png_metadata  # noqa: E402
from imagestudio.generations.service import (  # noqa: E402
    create_generation,
)
from imagestudio.generations.spec import GenerationSpec  # noqa: E402
from imagestudio.generations.worker import Worker  # noqa: E402
from imagestudio.models import Generation, User  # noqa: E402
from imagestudio.notify import NotificationHub, PostgresListener, attach  # noqa: E402
from imagestudio.providers.base import CancellationToken, GenerationRequest, GenerationType  # noqa: E402
from imagestudio.providers.builtin import BuiltinRenderer  # noqa: E402
from imagestudio.providers.registry import ProviderRegistry  # noqa: E402
from imagestudio.storage.keys import output_key  # noqa: E402
from imagestudio.storage.local import LocalStorage  # noqa: E402

POSTGRES_ADMIN_URL = os.environ.get("IMAGESTUDIO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS_FILE = ROOT / "docs" / "benchmarks.md"
BEGIN_MARK = "<!-- engine-benchmark:begin -->"
END_MARK = "<!-- engine-benchmark:end -->"


@dataclass
class Result:
    database: str
    size: int
    workers: str
    count: int
    throughput: float
    done_p50: float
    done_p95: float
    pickup_p50: float
    pickup_p95: float
    # Process CPU time (all threads, user + system) per generation during the throughput run.
    cpu_ms: float


class Target:
    """A throwaway database (SQLite file or PostgreSQL database) and a storage folder."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.folder = Path(tempfile.mkdtemp(prefix="imagestudio-bench-"))
        self.pg_name: str | None = None
        if kind == "sqlite":
            self.url = f"sqlite:///{self.folder / 'bench.db'}"
        else:
            self.pg_name = f"imagestudio_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
            self.url = f"{base}/{self.pg_name}"
        migrate.upgrade(self.url)
        self.db: Database = make_database(self.url)
        # As the bootstrap does: this process's sessions wake its waiters.
        self.hub = NotificationHub()
        attach(self.db, self.hub)
        self.storage = LocalStorage(self.folder / "storage")

    def close(self) -> None:
        self.db.dispose()
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.pg_name:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def make_user(db: Database, max_running: int) -> uuid.UUID:
    with db.writing() as session:
        user = User(email=f"bench-{uuid.uuid4().hex[:8]}@example.test", max_running=max_running)
        session.add(user)
        session.flush()
        return user.id


def submit(db: Database, owner_id: uuid.UUID, registry, settings, size: int, n: int) -> uuid.UUID:
    spec = GenerationSpec(provider="builtin", prompt=f"a lighthouse at dusk, take {n}", width=size, height=size, seed=n)
    with db.writing() as session:
        return create_generation(session, owner_id=owner_id, spec=spec, registry=registry, settings=settings).id


class Workers:
    """Either one Worker in this process (as `imagestudio serve` runs it) or `processes` separate
    `imagestudio worker` processes, each with `slots` generations at once."""

    def __init__(self, target: Target, registry, settings, processes: int, slots: int) -> None:
        self.target, self.processes, self.slots = target, processes, slots
        self.worker: Worker | None = None
        self.children: list[subprocess.Popen] = []
        self.listener: PostgresListener | None = None
        if processes == 0:
            self.worker = Worker(
                db=target.db,
                storage=target.storage,
                registry=registry,
                settings=settings,
                hub=target.hub,
                concurrency=slots,
                poll_interval=1.0,
            )

    async def start(self) -> None:
        if self.worker is not None:
            await self.worker.start()
            return
        if self.target.kind == "postgresql":  # so this process hears the workers' events
            self.listener = PostgresListener(self.target.url, self.target.hub)
            await self.listener.start()
        env = {
            **os.environ,
            "IMAGESTUDIO_DATABASE_URL": self.target.url,
            "IMAGESTUDIO_STORAGE_URL": (self.target.folder / "storage").as_uri(),
            "IMAGESTUDIO_DATA_DIR": str(self.target.folder),
            "IMAGESTUDIO_LOG_LEVEL": "warning",
        }
        command = [sys.executable, "-c", "from imagestudio.cli.main import main; main()", "worker"]
        command += ["--concurrency", str(self.slots), "--poll-interval", "0.005"]
        self.children = [self._spawn(command, env) for _ in range(self.processes)]
        for child in self.children:
            assert child.stdout is not None
            line = await asyncio.to_thread(child.stdout.readline)
            if "ready" not in line:
                raise RuntimeError("a worker process did not start")

    @staticmethod
    def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of this process and of the worker processes so far."""
        total = process_cpu()
        ticks = os.sysconf("SC_CLK_TCK")
        for child in self.children:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total

    async def stop(self) -> None:
        if self.worker is not None:
            await self.worker.stop()
        for child in self.children:
            child.send_signal(signal.SIGTERM)
        for child in self.children:
            await asyncio.to_thread(child.wait, 30)
        if self.listener is not None:
            await self.listener.stop()


async def measure(kind: str, size: int, processes: int, slots: int, count: int, one_at_a_time: int) -> Result:
    target = Target(kind)
    settings = Settings(_env_file=None, data_dir=target.folder, lease_seconds=30)  # type: ignore[call-arg]
    registry = ProviderRegistry()
    registry.register(BuiltinRenderer())
    owner = make_user(target.db, max_running=64)
    workers = Workers(target, registry, settings, processes, slots)
    await workers.start()
    try:
        # Warm up (first renders, statement caches, connection pools).
        for n in range(3):
            await asyncio.to_thread(submit, target.db, owner, registry, settings, size, 900_000 + n)
        await wait_succeeded(target.db, 3)

        # Latency: one at a time.
        done_ms: list[float] = []
        ids = []
        async with target.hub.subscribe_events(owner_id=owner) as notices:
            for n in range(one_at_a_time):
                started = time.perf_counter()
                generation_id = await asyncio.to_thread(submit, target.db, owner, registry, settings, size, n)
                while await asyncio.to_thread(status_of, target.db, generation_id) != "succeeded":
                    # Woken by the event notice; the short timeout covers SQLite worker processes,
                    # whose notices do not cross process boundaries.
                    await notices.get(0.001 if processes and kind == "sqlite" else 0.5)
                done_ms.append((time.perf_counter() - started) * 1000)
                ids.append(generation_id)
        pickup_ms = await asyncio.to_thread(pickups, target.db, ids)

        # Throughput: `count` submitted at once by another thread, timed until the last succeeded.
        cpu_before = workers.cpu_seconds()
        started = time.perf_counter()
        submitter = threading.Thread(
            target=lambda: [submit(target.db, owner, registry, settings, size, 10_000 + n) for n in range(count)]
        )
        submitter.start()
        await wait_succeeded(target.db, 3 + one_at_a_time + count)
        elapsed = time.perf_counter() - started
        cpu_ms = (workers.cpu_seconds() - cpu_before) * 1000 / count
        submitter.join()
        retried = await asyncio.to_thread(count_retried, target.db)
        if retried:
            print(f"  note: {retried} generations needed a second attempt", file=sys.stderr)
    finally:
        await workers.stop()
        target.close()
    return Result(
        database=kind,
        size=size,
        workers=f"{slots} in-process" if processes == 0 else f"{processes} processes x {slots}",
        count=count,
        throughput=count / elapsed,
        done_p50=percentile(done_ms, 0.5),
        done_p95=percentile(done_ms, 0.95),
        pickup_p50=percentile(pickup_ms, 0.5),
        pickup_p95=percentile(pickup_ms, 0.95),
        cpu_ms=cpu_ms,
    )


async def wait_succeeded(db: Database, total: int) -> None:
    # A cheap read every few milliseconds (WAL readers never block the writers).
    while await asyncio.to_thread(count_succeeded, db) < total:  # noqa: ASYNC110
        await asyncio.sleep(0.003)


def count_retried(db: Database) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(Generation).where(Generation.attempt > 1))


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def status_of(db: Database, generation_id: uuid.UUID) -> str:
    with db.reading() as session:
        return session.scalar(select(Generation.status).where(Generation.id == generation_id))


def pickups(db: Database, ids: list[uuid.UUID]) -> list[float]:
    with db.reading() as session:
        rows = session.execute(select(Generation.created_at, Generation.started_at).where(Generation.id.in_(ids))).all()
    return [(started - created).total_seconds() * 1000 for created, started in rows]


def count_succeeded(db: Database) -> int:
    with db.reading() as session:
        return session.scalar(select(func.count()).select_from(Generation).where(Generation.status == "succeeded"))


def machine() -> dict[str, str]:
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3) as conn:
            postgres = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        postgres = "unavailable"
    return {
        "cpus (nproc)": str(os.cpu_count()),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "pillow": PIL.__version__,
    }


# The worker stores one object per image; thumbnails are made by their first request (not timed here).
STAGES = ("create", "claim", "render", "encode PNG + sha256", "store (1 object)", "record success")


def stage_costs(kind: str, size: int, rounds: int = 50) -> dict[str, float]:
    """Median CPU milliseconds of each step of one generation, run one after the other (no
    concurrency, no thread hops): where the time of a generation goes."""
    target = Target(kind)
    settings = Settings(_env_file=None, data_dir=target.folder, lease_seconds=30)  # type: ignore[call-arg]
    registry = ProviderRegistry()
    renderer = BuiltinRenderer()
    registry.register(renderer)
    owner = make_user(target.db, max_running=64)
    loop = asyncio.new_event_loop()
    timings: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def timed(stage: str, step, *args, **kwargs):
        # Process CPU, not thread CPU: the renderer moves large images to a thread of its own.
        started = process_cpu()
        value = step(*args, **kwargs)
        timings[stage].append(process_cpu() - started)
        return value

    def encode(image, metadata) -> bytes:
        data = encode_png(image, metadata)
        sha256_hex(data)
        return data

    try:
        for n in range(rounds):
            timed("create", submit, target.db, owner, registry, settings, size, n)
            [claimed] = timed(
                "claim", queue.claim, target.db, worker_id="bench", limit=1, lease_seconds=30, default_max_running=64
            )
            request = GenerationRequest(
                type=GenerationType.text2img,
                prompt=claimed.prompt,
                model=claimed.model,
                width=claimed.width,
                height=claimed.height,
                seed=claimed.seed,
            )
            work = renderer.generate(request, lambda *_, **__: None, CancellationToken())
            result = timed("render", loop.run_until_complete, work)
            image = result.images[0].image
            metadata = png_metadata(claimed, result.images[0], RenderFacts.of(result))
            png = timed("encode PNG + sha256", encode, image, metadata)
            key = output_key(claimed.id, claimed.attempt, 0)
            timed("store (1 object)", target.storage.put, key, png, "image/png")
            output = StoredOutput(
                batch_index=0,
                storage_key=key,
                mime_type="image/png",
                bytes=len(png),
                width=size,
                height=size,
                sha256=sha256_hex(png),
                seed=claimed.seed,
            )
            timed(
                "record success",
                fenced.finish_succeeded,
                target.db,
                claimed,
                [output],
                served_by="builtin",
                model=claimed.model,
                revised_prompt=None,
                cost=None,
                usage={},
                final_progress=(20, 20),
            )
    finally:
        loop.close()
        target.close()
    warm = rounds // 5
    return {stage: statistics.median(values[warm:]) * 1000 for stage, values in timings.items()}


def stage_table(costs: dict[tuple[str, int], dict[str, float]]) -> str:
    columns = list(costs)
    lines = [
        "| step (CPU ms, median) | " + " | ".join(f"{kind} {size} px" for kind, size in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for stage in STAGES:
        lines.append(f"| {stage} | " + " | ".join(f"{costs[column][stage]:.2f}" for column in columns) + " |")
    lines.append("| **total** | " + " | ".join(f"**{sum(costs[c].values()):.2f}**" for c in columns) + " |")
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    lines = [
        "| database | size | workers | generations/s | CPU ms / generation | submit→succeeded p50 / p95 (ms) "
        "| pickup p50 / p95 (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.database} | {r.size} px | {r.workers} | {r.throughput:.0f} | {r.cpu_ms:.1f} | "
            f"{r.done_p50:.1f} / {r.done_p95:.1f} | {r.pickup_p50:.1f} / {r.pickup_p95:.1f} |"
        )
    return "\n".join(lines)


def write_results(
    results: list[Result],
    costs: dict,
    info: dict[str, str],
    count: int,
    one_at_a_time: int,
    *,
    load_start: str,
    write: bool,
) -> None:
    report_section(
        BEGIN_MARK,
        END_MARK,
        [
            "## Generation engine (`python bench/engine.py`)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')}. Throughput: {count} generations submitted at once (one",
            "transaction each), timed until the last succeeded. Latency: one at a time, "
            f"{one_at_a_time} generations, each",
            "waited for before the next. Built-in renderer, PNG level 1 with metadata, no thumbnail",
            "(made on first request), local storage (every object durable before its success), durable",
            "database (SQLite WAL with synchronous=NORMAL; PostgreSQL with its default synchronous_commit=on).",
            "",
            table(results),
            "",
            "Workers: `N in-process` is one worker with N slots inside the measuring process, as",
            "`imagestudio serve` runs it; `P processes x N` are P `imagestudio worker` processes. CPU is",
            "the user + system time of the measuring process and the worker processes, per generation",
            "(the PostgreSQL server's own CPU is not included).",
            "",
            "Where the time of one generation goes (each step alone, one thread, median CPU time):",
            "",
            stage_table(costs),
        ],
        load_start=load_start,
        write=write,
        facts=info,
    )


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as the reports quote them."""
    return "{:.1f} / {:.1f} / {:.1f}".format(*os.getloadavg())


def report_section(
    begin: str,
    end: str,
    lines: Sequence[str],
    *,
    load_start: str,
    write: bool,
    facts: Mapping[str, str] | None = None,
    path: Path = RESULTS_FILE,
) -> str:
    """A benchmark's section of docs/benchmarks.md: its marks around `lines`, then the machine and the
    load average from `load_start` (taken before the run) to now. Printed, and written over the
    section between the marks in `path` when `write`; answers the text."""
    machine_facts = facts or {"cpus": str(os.cpu_count())}
    described = ", ".join(f"{key} {value}" for key, value in machine_facts.items())
    section = "\n".join(
        [
            begin,
            *lines,
            "",
            f"Machine: {described}; load average at start {load_start}, at end {load_average()}"
            " (the machine is shared: compare rows of one run).",
            end,
        ]
    )
    print(section)
    if write:
        replace_section(path, begin, end, section)
        print(f"written to {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return section


def replace_section(path: Path, begin: str, end: str, section: str) -> None:
    """Rewrites the part of `path` between the two marks (appends it when the marks are missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    current = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + section + rest.split(end, 1)[1]
    else:
        current = current.rstrip() + "\n\n" + section + "\n"
    path.write_text(current)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="64,512")
    parser.add_argument(
        "--workers",
        default="0x1,0x4,2x2",
        help="PROCESSESxSLOTS list; 0 processes means one worker inside this process (as `serve` runs it)",
    )
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--one-at-a-time", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="100 at once, 30 one at a time")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    count, single = (100, 30) if args.quick else (args.count, args.one_at_a_time)
    import logging

    logging.basicConfig(level=logging.WARNING)
    load_start = load_average()
    results = []
    for kind in args.databases.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            for layout in args.workers.split(","):
                processes, slots = (int(part) for part in layout.lower().split("x"))
                result = asyncio.run(measure(kind, size, processes, slots, count, single))
                print(table([result]).splitlines()[-1], flush=True)
                results.append(result)
    costs = {}
    for kind in args.databases.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            costs[(kind, size)] = stage_costs(kind, size)
    print()
    write_results(results, costs, machine(), count, single, load_start=load_start, write=not args.no_write)


if __name__ == "__main__":
    main()
