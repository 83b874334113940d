"""Cross-request batching in the local diffusion provider, run for real on CPU with the tiny pipeline:
compatible generations share one pipeline call, and each keeps its own pixels, progress, cancel and
outcome."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest
from PIL import Image

from imagestudio.providers.base import (
    CancellationToken,
    ContentRejectedError,
    GenerationCanceled,
    GenerationRequest,
    GenerationResult,
    GenerationType,
    RetriableError,
    preview_passes,
)
from imagestudio.providers.diffusers import DiffusersProvider
from tests.conftest import DIFFUSERS_EXTRA, skip_module_without

skip_module_without(DIFFUSERS_EXTRA)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from diffusers import StableDiffusionPipeline  # noqa: E402

from tests.providers.diffusers_fixtures import build_tiny_sd_pipeline  # noqa: E402
from tests.providers.test_diffusers import ProgressLog, pixels  # noqa: E402

STEPS = 2
# Largest difference of a pixel channel between an image rendered in a batch and alone. CPU
# convolution and matmul kernels may pick another blocking for another batch size, which moves a
# rounding by one unit: measured with the tiny pipeline on torch 2.13 CPU, 0 for most images and 1
# at most (bench/diffusers_batching.py reports it for every run). One shared generator gives 255.
TOLERANCE = 1


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


def provider(folder: Path, *, batch_size: int, wait_ms: float = 60_000, **models: Path) -> DiffusersProvider:
    configured = {"tiny": str(folder), **{name: str(path) for name, path in models.items()}}
    return DiffusersProvider(configured, batch_size=batch_size, batch_wait_ms=wait_ms)


def request(**overrides: object) -> GenerationRequest:
    fields: dict = {
        "type": GenerationType.text2img,
        "prompt": "a photo of a red house",
        "model": "tiny",
        "width": 64,
        "height": 64,
        "steps": STEPS,
        "guidance": 1.0,
        "seed": 1234,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


async def together(
    target: DiffusersProvider,
    requests: list[GenerationRequest],
    progress: list | None = None,
    cancels: list[CancellationToken] | None = None,
    stagger: float = 0.0,
) -> list[GenerationResult | BaseException]:
    """Run the requests at once (each `stagger` seconds after the one before); results or errors."""
    progress = progress or [ProgressLog() for _ in requests]
    cancels = cancels or [CancellationToken() for _ in requests]
    outcomes: list[GenerationResult | BaseException | None] = [None] * len(requests)

    async def one(index: int) -> None:
        await anyio.sleep(stagger * index)
        try:
            outcomes[index] = await target.generate(requests[index], progress[index], cancels[index])
        except Exception as error:
            outcomes[index] = error

    async with anyio.create_task_group() as group:
        for index in range(len(requests)):
            group.start_soon(one, index)
    return outcomes  # type: ignore[return-value]


def result(outcome: GenerationResult | BaseException) -> GenerationResult:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def wait_until(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await anyio.sleep(0.01)


# ---- each image as if run alone ----


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_batched_images_equal_their_solo_runs(tiny_model_dir: Path) -> None:
    # Different prompts, negative prompts, seeds and image counts; real guidance (two passes per step).
    requests = [
        request(prompt="a red house", negative_prompt="fog", seed=11, guidance=7.5),
        request(prompt="a blue boat on a lake", negative_prompt="", seed=22, guidance=7.5),
        request(prompt="an old oak tree", negative_prompt="blurry", seed=33, guidance=7.5, num_images=2),
    ]
    batched = [result(outcome) for outcome in await together(provider(tiny_model_dir, batch_size=4), requests)]
    alone = provider(tiny_model_dir, batch_size=1)
    solo = [await alone.generate(req, ProgressLog(), CancellationToken()) for req in requests]

    assert [r.usage["batch_images"] for r in batched] == [4, 4, 4]  # one call made all four
    assert "batch_images" not in solo[0].usage
    for together_result, solo_result in zip(batched, solo, strict=True):
        assert [image.seed for image in together_result.images] == [image.seed for image in solo_result.images]
        for mine, theirs in zip(together_result.images, solo_result.images, strict=True):
            difference = np.abs(pixels(mine.image) - pixels(theirs.image))
            assert difference.max() <= TOLERANCE
    # The images really differ from each other (each its own noise and prompt).
    firsts = [pixels(r.images[0].image) for r in batched]
    assert not np.array_equal(firsts[0], firsts[1])
    assert not np.array_equal(pixels(batched[2].images[0].image), pixels(batched[2].images[1].image))


# ---- progress, cancel and failure stay each generation's own ----


@pytest.mark.anyio
async def test_each_generation_hears_its_own_progress_and_previews(tiny_model_dir: Path) -> None:
    steps = 4
    logs = [ProgressLog(), ProgressLog()]
    requests = [request(seed=1, steps=steps, previews=2), request(seed=2, steps=steps, num_images=2)]
    outcomes = await together(provider(tiny_model_dir, batch_size=3), requests, logs)

    assert [result(outcome).usage["batch_images"] for outcome in outcomes] == [3, 3]
    chosen = sorted(preview_passes(steps, 2))
    assert [(step, index) for step, index, _ in logs[0].previews] == [(step, 0) for step in chosen]
    assert logs[1].previews == []
    assert logs[1].calls == [(step, steps) for step in range(1, steps + 1)]
    assert logs[0].calls == [(step, steps) for step in range(1, steps + 1)]  # a preview comes with its step


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_a_canceled_generation_leaves_the_running_batch_and_the_other_finishes(tiny_model_dir: Path) -> None:
    steps = 4
    cancels = [CancellationToken(), CancellationToken()]
    canceled_log, other_log = ProgressLog(), ProgressLog()

    def cancel_at_first_step(step: int, total: int, /, **picture: object) -> None:
        canceled_log(step, total)
        if step == 1:
            cancels[0].cancel()

    requests = [request(seed=5, steps=steps), request(seed=6, steps=steps)]
    canceled, finished = await together(
        provider(tiny_model_dir, batch_size=2), requests, [cancel_at_first_step, other_log], cancels
    )

    assert isinstance(canceled, GenerationCanceled)
    assert canceled_log.calls == [(1, steps)]
    assert other_log.calls == [(step, steps) for step in range(1, steps + 1)]
    finished = result(finished)
    assert finished.usage["batch_images"] == 2
    solo = await provider(tiny_model_dir, batch_size=1).generate(requests[1], ProgressLog(), CancellationToken())
    assert np.abs(pixels(finished.images[0].image) - pixels(solo.images[0].image)).max() <= TOLERANCE


@pytest.mark.anyio
async def test_a_generation_canceled_while_its_batch_waits_is_dropped_from_it(tiny_model_dir: Path) -> None:
    target = provider(tiny_model_dir, batch_size=4, wait_ms=60_000)
    cancels = [CancellationToken(), CancellationToken()]
    outcomes: list = [None, None]

    async def run(index: int) -> None:
        try:
            outcomes[index] = await target.generate(request(seed=index), ProgressLog(), cancels[index])
        except Exception as error:
            outcomes[index] = error

    async with anyio.create_task_group() as group:
        group.start_soon(run, 0)
        await wait_until(lambda: target._batcher.waiting() == 1)
        cancels[0].cancel()
        await wait_until(lambda: isinstance(outcomes[0], GenerationCanceled))
        assert target._batcher.waiting() == 0
        assert target.load_count == 0  # the batch that lost its only member never ran
        group.start_soon(run, 1)
        await wait_until(lambda: target._batcher.waiting() == 1)
        # Three more images fill the batch, which then runs at once with both members.
        third = await target.generate(request(seed=9, num_images=3), ProgressLog(), CancellationToken())

    assert result(outcomes[1]).usage["batch_images"] == 4
    assert third.usage["batch_images"] == 4


@pytest.mark.anyio
async def test_a_failed_call_fails_every_member_with_its_own_error(tiny_model_dir: Path) -> None:
    def exhaust_memory(step: int, total: int, /, **picture: object) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    target = provider(tiny_model_dir, batch_size=2)
    first, second = await together(target, [request(seed=1), request(seed=2)], [exhaust_memory, ProgressLog()])

    for error in (first, second):
        assert isinstance(error, RetriableError)
        assert error.code == "out_of_memory"
    assert first is not second
    # The model is free again for the next batch.
    again = await together(target, [request(seed=3), request(seed=4)])
    assert [result(outcome).usage["batch_images"] for outcome in again] == [2, 2]


@pytest.mark.anyio
async def test_only_the_generation_whose_image_is_flagged_is_rejected(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stands in for the safety checker shipped with SD 1.x: it flags the second image of the call.
    monkeypatch.setattr(
        StableDiffusionPipeline, "run_safety_checker", lambda self, image, device, dtype: (image, [False, True])
    )
    outcomes = await together(provider(tiny_model_dir, batch_size=2), [request(seed=1), request(seed=2)])

    # Which of the two came second in the call depends on which joined the batch first.
    [rejected] = [outcome for outcome in outcomes if isinstance(outcome, ContentRejectedError)]
    [kept] = [outcome for outcome in outcomes if isinstance(outcome, GenerationResult)]
    assert len(kept.images) == 1
    assert "1 of 1" in rejected.message


# ---- what is batched, and for how long a batch waits ----


@pytest.mark.anyio
async def test_only_compatible_generations_share_a_call(tiny_model_dir: Path) -> None:
    variants = [
        request(),
        request(seed=99, prompt="another prompt"),  # compatible: prompt and seed may differ
        request(width=72),
        request(steps=STEPS + 1),
        request(model="twin"),
        request(guidance=3.0),
        request(scheduler="euler_a"),
        request(negative_prompt="fog"),
        request(type=GenerationType.img2img, init_image=Image.new("RGB", (64, 64)), strength=1.0),
    ]
    # Two images fill a batch, so the compatible pair runs at once; the others wait out the window
    # (long, so that a busy machine cannot make the pair miss each other) and run alone.
    target = provider(tiny_model_dir, batch_size=2, wait_ms=8000, twin=tiny_model_dir)
    outcomes = await together(target, variants)

    batch_sizes = [result(outcome).usage.get("batch_images") for outcome in outcomes]
    assert batch_sizes == [2, 2, 1, 1, 1, 1, 1, 1, None]  # img2img runs alone, outside any batch


@pytest.mark.anyio
async def test_a_batch_waits_its_window_for_company_then_runs_without_filling(tiny_model_dir: Path) -> None:
    # Long enough that the second request (0.2 s after the first) joins even on a busy machine.
    wait_seconds = 8.0
    target = provider(tiny_model_dir, batch_size=8, wait_ms=wait_seconds * 1000)
    await target.preload()

    started = time.monotonic()
    outcomes = await together(target, [request(seed=1), request(seed=2)], stagger=0.2)
    elapsed = time.monotonic() - started

    assert [result(outcome).usage["batch_images"] for outcome in outcomes] == [2, 2]
    assert elapsed >= wait_seconds  # it waited for more (it was never full) ...
    assert elapsed < 600  # ... and then ran with what it had (a full batch of 8 would never come)

    started = time.monotonic()
    alone = result((await together(target, [request(seed=3)]))[0])
    assert alone.usage["batch_images"] == 1
    assert time.monotonic() - started >= wait_seconds


@pytest.mark.anyio
async def test_a_full_batch_does_not_wait(tiny_model_dir: Path) -> None:
    target = provider(tiny_model_dir, batch_size=2, wait_ms=600_000)
    with anyio.fail_after(120):  # far below the ten minute window
        outcomes = await together(target, [request(seed=1), request(seed=2)])
    assert [result(outcome).usage["batch_images"] for outcome in outcomes] == [2, 2]


@pytest.mark.anyio
async def test_a_generation_of_batch_size_images_or_more_runs_alone(tiny_model_dir: Path) -> None:
    target = provider(tiny_model_dir, batch_size=2, wait_ms=600_000)
    with anyio.fail_after(120):
        big = result((await together(target, [request(num_images=2)]))[0])
    assert len(big.images) == 2
    assert "batch_images" not in big.usage
