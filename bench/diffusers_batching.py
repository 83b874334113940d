"""Cross-request batching of local diffusion: generations/s for queued single-image requests through
the real engine, with batching off and on, on CPU with the tiny test pipeline.

    .venv/bin/python bench/diffusers_batching.py              # the table, written into docs/benchmarks.md
    .venv/bin/python bench/diffusers_batching.py --no-write   # printed only
    .venv/bin/python bench/diffusers_batching.py --no-write --model-dir /models/sd15 --size 512 --steps 20
                                                              # a real pipeline, on the best device found

Each round queues --count text2img generations of one image (same model, size and steps; prompts
and seeds differ), then starts one in-process worker with --slots slots (as `imagestudio serve` or
`imagestudio worker --concurrency` runs it) and times until the last one succeeded: claim, render,
encode, store and record, on SQLite in a temporary folder. The model is loaded and warmed before
the clock starts. The settings are interleaved round by round, and each round's images are compared
pixel by pixel with the same seeds' images from the round with batching off.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sqlalchemy import select  # noqa: E402
from tests.providers.diffusers_fixtures import build_tiny_sd_pipeline  # noqa: E402

from bench.engine import Target, load_average, make_user, report_section, wait_succeeded  # noqa: E402
from imagestudio.config import Settings  # noqa: E402
from imagestudio.generations.service import create_generation  # noqa: E402
from imagestudio.generations.spec import GenerationSpec  # noqa: E402
from imagestudio.generations.worker import Worker  # noqa: E402
from imagestudio.models import Asset, Generation  # noqa: E402
from imagestudio.providers.base import CancellationToken, GenerationRequest, GenerationType  # noqa: E402
from imagestudio.providers.diffusers import DiffusersProvider  # noqa: E402
from imagestudio.providers.registry import ProviderRegistry  # noqa: E402

BEGIN_MARK = "<!-- batching-benchmark:begin -->"
END_MARK = "<!-- batching-benchmark:end -->"


async def one_round(
    folder: Path, batch_size: int, wait_ms: float, slots: int, count: int, size: int, steps: int, device: str | None
) -> tuple[float, dict[int, np.ndarray], list[int]]:
    """Generations/s for `count` queued generations, their pixels by seed, and the batch sizes seen."""
    target = Target("sqlite")
    settings = Settings(_env_file=None, data_dir=target.folder, lease_seconds=60)  # type: ignore[call-arg]
    provider = DiffusersProvider({"tiny": str(folder)}, device=device, batch_size=batch_size, batch_wait_ms=wait_ms)
    registry = ProviderRegistry(default="diffusers")
    registry.register(provider)
    owner = make_user(target.db, max_running=slots)
    warm = GenerationRequest(
        type=GenerationType.text2img, prompt="warm", model="tiny", width=size, height=size, steps=steps
    )
    await provider.generate(warm, lambda *args, **kwargs: None, CancellationToken())
    with target.db.writing() as session:
        for n in range(count):
            spec = GenerationSpec(
                provider="diffusers", model="tiny", prompt=f"a lighthouse at dusk, take {n}",
                width=size, height=size, steps=steps, seed=1000 + n,
            )
            create_generation(session, owner_id=owner, spec=spec, registry=registry, settings=settings)
    worker = Worker(
        db=target.db, storage=target.storage, registry=registry, settings=settings, hub=target.hub,
        concurrency=slots, poll_interval=0.05,
    )
    try:
        started = time.perf_counter()
        await worker.start()
        await wait_succeeded(target.db, count)
        elapsed = time.perf_counter() - started
        await worker.stop()
        with target.db.reading() as session:
            rows = session.execute(select(Asset.seed, Asset.storage_key)).all()
            batches = [generation.usage.get("batch_images", 1) for generation in session.scalars(select(Generation))]
        pictures = {
            seed: np.asarray(Image.open(io.BytesIO(target.storage.get(key))).convert("RGB"), dtype=np.int16)
            for seed, key in rows
        }
    finally:
        target.close()
    return count / elapsed, pictures, batches


async def run(args: argparse.Namespace) -> str:
    import torch

    settings = [(1, 0.0)] + [(int(size), args.wait_ms) for size in args.batch_sizes.split(",")]
    speeds: dict[int, list[float]] = {size: [] for size, _ in settings}
    differences: dict[int, int] = {size: 0 for size, _ in settings}
    calls: dict[int, list[int]] = {size: [] for size, _ in settings}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.model_dir or build_tiny_sd_pipeline(Path(scratch) / "tiny-sd")
        device = None if args.model_dir else "cpu"
        for round_number in range(args.rounds):
            reference: dict[int, np.ndarray] | None = None
            for size, wait_ms in settings:
                speed, pictures, batches = await one_round(
                    folder, size, wait_ms, args.slots, args.count, args.size, args.steps, device
                )
                speeds[size].append(speed)
                calls[size] += batches
                if reference is None:
                    reference = pictures
                for seed, picture in pictures.items():
                    differences[size] = max(differences[size], int(np.abs(picture - reference[seed]).max()))
                print(f"round {round_number + 1}, batch size {size}: {speed:.2f} generations/s", flush=True)
    off = statistics.median(speeds[1])
    lines = [
        "| batch size (`IMAGESTUDIO_DIFFUSERS_BATCH_SIZE`) | generations/s, median (min-max) | vs off "
        "| images per pipeline call, mean | largest pixel difference from batching off |",
        "|---|---|---|---|---|",
    ]
    for size, _ in settings:
        median = statistics.median(speeds[size])
        label = "1 (off)" if size == 1 else str(size)
        lines.append(
            f"| {label} | {median:.2f} ({min(speeds[size]):.2f}-{max(speeds[size]):.2f}) | {median / off:.2f}x "
            f"| {statistics.mean(calls[size]):.1f} | {differences[size]} |"
        )
    return "\n".join(lines) + (
        f"\n\n{args.count} queued text2img generations of one {args.size} px image, {args.steps} steps, default "
        f"guidance; one in-process worker with {args.slots} slots; batch wait {args.wait_ms:g} ms; "
        f"{args.rounds} interleaved rounds; torch {torch.__version__}, {torch.get_num_threads()} CPU threads."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--batch-sizes", default="4,8", help="the settings to compare with batching off")
    parser.add_argument("--wait-ms", type=float, default=20.0)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, help="a diffusers pipeline folder instead of the tiny one")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load_start = load_average()
    table = asyncio.run(run(args))
    tiny = "the tiny randomly initialised pipeline on CPU"
    what = f"the pipeline in {args.model_dir.name}" if args.model_dir else tiny
    lines = [
        "## Cross-request batching of local diffusion (`python bench/diffusers_batching.py`)",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} with {what}, through the real engine (claim, render,",
        "encode, store, record on SQLite).",
        "",
        table,
    ]
    report_section(BEGIN_MARK, END_MARK, lines, load_start=load_start, write=not args.no_write)


if __name__ == "__main__":
    main()
