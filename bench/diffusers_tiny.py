"""Time the local diffusion provider on CPU with the tiny test pipeline.

Measures what the provider adds around diffusers (loading, the first call, warm calls) rather than
model speed: the tiny pipeline's weights are random and a few megabytes.

    .venv/bin/python bench/diffusers_tiny.py [--size 64] [--steps 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.providers.diffusers_fixtures import build_tiny_sd_pipeline  # noqa: E402

from imagestudio.providers.base import (  # noqa: E402
    CancellationToken,
    GenerationRequest,
    GenerationType,
)
from imagestudio.providers.diffusers import DiffusersProvider  # noqa: E402


def _ignore_progress(step: int, total: int) -> None:
    pass


async def _timed_generation(provider: DiffusersProvider, request: GenerationRequest) -> float:
    started = time.perf_counter()
    await provider.generate(request, _ignore_progress, CancellationToken())
    return time.perf_counter() - started


async def run(size: int, steps: int, repeats: int) -> None:
    import torch

    with tempfile.TemporaryDirectory() as scratch:
        started = time.perf_counter()
        folder = build_tiny_sd_pipeline(Path(scratch) / "tiny-sd")
        build_seconds = time.perf_counter() - started

        provider = DiffusersProvider({"tiny": str(folder)}, device="cpu")
        text2img = GenerationRequest(
            type=GenerationType.text2img,
            prompt="a photo of a red house",
            model="tiny",
            width=size,
            height=size,
            steps=steps,
            seed=1,
        )
        # The first call includes loading the pipeline from disk into the warm cache.
        first_seconds = await _timed_generation(provider, text2img)
        warm = [await _timed_generation(provider, text2img) for _ in range(repeats)]

        # Loading alone, on a provider with a cold cache, through the same code path.
        load_times = []
        for _ in range(repeats):
            cold = DiffusersProvider({"tiny": str(folder)}, device="cpu")
            started = time.perf_counter()
            await cold.preload("tiny")
            load_times.append(time.perf_counter() - started)

        img2img = GenerationRequest(
            type=GenerationType.img2img,
            prompt="a photo of a red house",
            model="tiny",
            width=size,
            height=size,
            steps=steps,
            strength=1.0,
            seed=1,
            init_image=_grey(size),
        )
        first_img2img = await _timed_generation(provider, img2img)  # derives the img2img pipe
        warm_img2img = [await _timed_generation(provider, img2img) for _ in range(repeats)]

        batch = GenerationRequest(
            type=GenerationType.text2img,
            prompt="a photo of a red house",
            model="tiny",
            width=size,
            height=size,
            steps=steps,
            num_images=4,
            seed=1,
        )
        warm_batch = [await _timed_generation(provider, batch) for _ in range(repeats)]

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {size}px, {steps} steps")
    print(f"build tiny pipeline (one-off):    {build_seconds * 1000:8.1f} ms")
    print(f"load, median of {repeats}:              {statistics.median(load_times) * 1000:8.1f} ms")
    print(f"first text2img (load + call):     {first_seconds * 1000:8.1f} ms")
    print(f"warm text2img, median of {repeats}:     {statistics.median(warm) * 1000:8.1f} ms")
    print(f"first img2img (derive + call):    {first_img2img * 1000:8.1f} ms")
    print(f"warm img2img, median of {repeats}:      {statistics.median(warm_img2img) * 1000:8.1f} ms")
    print(f"warm text2img x4, median of {repeats}:  {statistics.median(warm_batch) * 1000:8.1f} ms")


def _grey(size: int):
    from PIL import Image

    return Image.new("RGB", (size, size), (128, 128, 128))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    anyio.run(run, arguments.size, arguments.steps, arguments.repeats)


if __name__ == "__main__":
    main()
