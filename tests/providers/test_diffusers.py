"""The local diffusion provider, run for real on CPU against a tiny randomly initialised pipeline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest
from PIL import Image

from imagestudio.providers import diffusers as diffusers_module
from imagestudio.providers.base import (
    CancellationToken,
    ContentRejectedError,
    GenerationCanceled,
    GenerationRequest,
    GenerationType,
    NotConfiguredError,
    PermanentError,
    Provider,
    RetriableError,
    preview_passes,
)
from imagestudio.providers.diffusers import (
    DiffusersProvider,
    ModelFamily,
    default_dtype,
    family_from_class_name,
    normalize_scheduler_name,
)
from imagestudio.providers.registry import ProviderRegistry
from tests.conftest import DIFFUSERS_EXTRA, skip_module_without

skip_module_without(DIFFUSERS_EXTRA, "; pip install -e '.[diffusers]' to run these tests")

import numpy as np  # noqa: E402  (after the skip: numpy comes with the extra)
import torch  # noqa: E402
from diffusers import (  # noqa: E402
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    AutoPipelineForText2Image,
)

from tests.providers.diffusers_fixtures import build_tiny_sd_pipeline  # noqa: E402

SIZE = 64
STEPS = 4


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture
def provider(tiny_model_dir: Path) -> DiffusersProvider:
    return DiffusersProvider({"tiny": str(tiny_model_dir)})


def request(type: GenerationType = GenerationType.text2img, **overrides: object) -> GenerationRequest:
    fields: dict = {
        "type": type,
        "prompt": "a photo of a red house",
        "model": "tiny",
        "width": SIZE,
        "height": SIZE,
        "steps": STEPS,
        # Guidance 1 skips the unconditional pass: half the work; tests of guidance set their own.
        "guidance": 1.0,
        "seed": 1234,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


class ProgressLog:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        # (step, output index, picture) of every preview
        self.previews: list[tuple[int, int, Image.Image]] = []

    def __call__(
        self, step: int, total: int, /, *, preview: Image.Image | None = None, index: int | None = None
    ) -> None:
        if preview is not None:
            assert index is not None
            self.previews.append((step, index, preview))
        else:
            assert index is None  # the batch denoises together: no step belongs to one image
        self.calls.append((step, total))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def solid(color: tuple[int, int, int], size: int = SIZE) -> Image.Image:
    return Image.new("RGB", (size, size), color)


def half_mask(white_side: str) -> Image.Image:
    mask = Image.new("L", (SIZE, SIZE), 0)
    box = (0, 0, SIZE // 2, SIZE) if white_side == "left" else (SIZE // 2, 0, SIZE, SIZE)
    mask.paste(255, box)
    return mask


async def generate(provider: DiffusersProvider, req: GenerationRequest, progress=None, cancel=None):
    return await provider.generate(req, progress or ProgressLog(), cancel or CancellationToken())


# ---- text2img, seeds, sizes ----


@pytest.mark.anyio
async def test_text2img_returns_the_requested_count_size_and_seeds(provider: DiffusersProvider) -> None:
    result = await generate(provider, request(num_images=3, width=64, height=80, seed=40))

    assert len(result.images) == 3
    assert [generated.image.size for generated in result.images] == [(64, 80)] * 3
    assert [generated.seed for generated in result.images] == [40, 41, 42]
    assert result.model == "tiny"
    assert result.usage["device"] == "cpu"
    assert result.usage["dtype"] == "float32"
    assert result.usage["steps"] == STEPS
    assert isinstance(provider, Provider)


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_same_seed_gives_identical_pixels_and_other_seeds_differ(provider: DiffusersProvider) -> None:
    first = await generate(provider, request(seed=7))
    again = await generate(provider, request(seed=7))
    other = await generate(provider, request(seed=8))

    assert np.array_equal(pixels(first.images[0].image), pixels(again.images[0].image))
    assert not np.array_equal(pixels(first.images[0].image), pixels(other.images[0].image))


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_each_image_of_a_batch_is_reproducible_from_its_own_seed(provider: DiffusersProvider) -> None:
    batch = await generate(provider, request(num_images=2, seed=20))
    alone = await generate(provider, request(num_images=1, seed=21))

    # Batched convolutions may round differently from single ones by a unit.
    difference = np.abs(pixels(batch.images[1].image) - pixels(alone.images[0].image))
    assert difference.max() <= 2
    assert not np.array_equal(pixels(batch.images[0].image), pixels(batch.images[1].image))


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_a_random_seed_is_reported_and_reproduces_the_image(provider: DiffusersProvider) -> None:
    result = await generate(provider, request(seed=None, num_images=2))
    seeds = [generated.seed for generated in result.images]
    assert seeds[0] is not None
    assert seeds[1] == seeds[0] + 1

    replay = await generate(provider, request(seed=seeds[0], num_images=2))
    for generated, replayed in zip(result.images, replay.images, strict=True):
        assert np.array_equal(pixels(generated.image), pixels(replayed.image))


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_negative_prompt_and_guidance_change_the_result(provider: DiffusersProvider) -> None:
    plain = pixels((await generate(provider, request(guidance=7.5))).images[0].image)
    with_negative = request(guidance=7.5, negative_prompt="blurry low quality")
    negative = pixels((await generate(provider, with_negative)).images[0].image)
    weaker = pixels((await generate(provider, request(guidance=2.0))).images[0].image)

    assert not np.array_equal(plain, negative)
    assert not np.array_equal(plain, weaker)


# ---- img2img and inpaint ----


@pytest.mark.anyio
async def test_img2img_follows_the_init_image_and_runs_strength_times_steps(
    provider: DiffusersProvider,
) -> None:
    red_log, blue_log = ProgressLog(), ProgressLog()
    # An init image of another size is fitted to the requested size.
    red = await generate(
        provider, request(GenerationType.img2img, init_image=solid((220, 30, 30), 96), strength=0.5), red_log
    )
    blue = await generate(
        provider, request(GenerationType.img2img, init_image=solid((30, 30, 220)), strength=0.5), blue_log
    )

    assert red.images[0].image.size == (SIZE, SIZE)
    assert not np.array_equal(pixels(red.images[0].image), pixels(blue.images[0].image))
    assert red_log.calls == [(1, 2), (2, 2)]
    assert red.usage["steps"] == 2


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_inpaint_repaints_only_where_the_mask_is_white(provider: DiffusersProvider) -> None:
    init = pixels(solid((90, 160, 60)))
    for white_side in ("left", "right"):
        mask = half_mask(white_side)
        outputs = [
            pixels(
                (
                    await generate(
                        provider,
                        request(
                            GenerationType.inpaint,
                            init_image=Image.fromarray(init.astype(np.uint8)),
                            mask_image=mask,
                            steps=2,
                            seed=seed,
                        ),
                    )
                )
                .images[0]
                .image
            )
            for seed in (1, 2)
        ]
        # The seed drives the repainted half; the kept half follows the init image whatever the seed.
        change = np.abs(outputs[0] - outputs[1])
        left, right = change[:, : SIZE // 2].mean(), change[:, SIZE // 2 :].mean()
        repainted, kept = (left, right) if white_side == "left" else (right, left)
        assert repainted > 3 * kept, (white_side, repainted, kept)


# ---- progress and cancellation ----


@pytest.mark.anyio
async def test_progress_is_reported_for_every_step(provider: DiffusersProvider) -> None:
    log = ProgressLog()
    await generate(provider, request(), log)
    assert log.calls == [(step, STEPS) for step in range(1, STEPS + 1)]


@pytest.mark.anyio
async def test_previews_are_each_images_picture_so_far_at_a_few_spread_steps(provider: DiffusersProvider) -> None:
    log = ProgressLog()
    result = await generate(provider, request(num_images=2, previews=2), log)
    chosen = sorted(preview_passes(STEPS, 2))
    assert len(chosen) == 2
    # Every step is reported once per call; a preview step once per image, with that image's picture.
    assert [(step, index) for step, index, _ in log.previews] == [(step, index) for step in chosen for index in (0, 1)]
    assert log.calls == [
        (step, STEPS) for step in range(1, STEPS + 1) for _ in range(2 if step in chosen else 1)
    ]
    pictures = [pixels(picture) for _, _, picture in log.previews]
    assert all(picture.shape == (SIZE, SIZE, 3) for picture in pictures)
    finals = [pixels(image.image) for image in result.images]
    # Real pictures of the work in progress: they change from step to step, differ between the two
    # images, and are not yet the finished images.
    assert not np.array_equal(pictures[0], pictures[2])
    assert not np.array_equal(pictures[0], pictures[1])
    assert not np.array_equal(pictures[2], finals[0])


@pytest.mark.anyio
async def test_without_previews_asked_none_are_decoded(provider: DiffusersProvider) -> None:
    log = ProgressLog()
    await generate(provider, request(num_images=2), log)
    assert log.previews == []


@pytest.mark.anyio
async def test_cancel_after_the_first_step_stops_and_discards(provider: DiffusersProvider) -> None:
    cancel = CancellationToken()
    log = ProgressLog()

    def cancel_at_first_step(step: int, total: int) -> None:
        log(step, total)
        if step == 1:
            cancel.cancel()

    with pytest.raises(GenerationCanceled):
        await provider.generate(request(steps=8), cancel_at_first_step, cancel)

    assert log.calls == [(1, 8)]
    # The pipe was released and its interrupt flag does not leak into the next generation.
    after = ProgressLog()
    result = await generate(provider, request(), after)
    assert len(result.images) == 1
    assert after.calls[-1] == (STEPS, STEPS)


@pytest.mark.anyio
async def test_an_already_cancelled_token_refuses_before_loading(provider: DiffusersProvider) -> None:
    cancel = CancellationToken()
    cancel.cancel()
    with pytest.raises(GenerationCanceled):
        await generate(provider, request(), cancel=cancel)
    assert provider.load_count == 0


@pytest.mark.anyio
async def test_cancelling_the_awaiting_task_stops_the_worker_thread(provider: DiffusersProvider) -> None:
    log = ProgressLog()
    # Progress comes from the provider's own threads (a batch's), not only from anyio's.
    loop = anyio.lowlevel.current_token()
    with anyio.CancelScope() as scope:

        def cancel_scope_at_first_step(step: int, total: int) -> None:
            log(step, total)
            if step == 1:
                anyio.from_thread.run_sync(scope.cancel, token=loop)

        await provider.generate(request(steps=20), cancel_scope_at_first_step, CancellationToken())
    assert scope.cancelled_caught

    # The next generation waits for the abandoned thread to release the pipe, then runs normally.
    await generate(provider, request())
    assert 1 <= len(log.calls) < 20


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_concurrent_generations_on_one_model_match_sequential_ones(provider: DiffusersProvider) -> None:
    requests = [request(seed=3), request(seed=4, scheduler="euler_a")]
    sequential = [pixels((await generate(provider, req)).images[0].image) for req in requests]

    concurrent: dict[int, np.ndarray] = {}

    async def run(index: int) -> None:
        concurrent[index] = pixels((await generate(provider, requests[index])).images[0].image)

    async with anyio.create_task_group() as group:
        for index in range(len(requests)):
            group.start_soon(run, index)

    for index, expected in enumerate(sequential):
        assert np.array_equal(concurrent[index], expected)


# ---- schedulers ----


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_scheduler_by_name_applies_to_one_generation_only(provider: DiffusersProvider) -> None:
    default = await generate(provider, request())
    euler_a = await generate(provider, request(scheduler="euler_a"))
    karras = await generate(provider, request(scheduler="DPM++ 2M Karras"))
    default_again = await generate(provider, request())

    assert default.usage["scheduler"] == "DDIMScheduler"
    assert euler_a.usage["scheduler"] == "EulerAncestralDiscreteScheduler"
    assert karras.usage["scheduler"] == "DPMSolverMultistepScheduler"
    assert default_again.usage["scheduler"] == "DDIMScheduler"
    assert not np.array_equal(pixels(default.images[0].image), pixels(euler_a.images[0].image))
    assert np.array_equal(pixels(default.images[0].image), pixels(default_again.images[0].image))


@pytest.mark.anyio
async def test_a_scheduler_the_model_cannot_use_is_refused(provider: DiffusersProvider) -> None:
    with pytest.raises(PermanentError, match="does not work with model 'tiny'"):
        await generate(provider, request(scheduler="flow_euler"))


def test_scheduler_names_are_normalised() -> None:
    assert normalize_scheduler_name("DPM++ 2M Karras") == "dpmpp_2m_karras"
    assert normalize_scheduler_name(" Euler-A ") == "euler_a"
    assert normalize_scheduler_name("ddim") == "ddim"


# ---- the warm cache ----


@pytest.fixture
def load_spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Records the pipelines diffusers really loads and derives (the real methods still run)."""
    made: dict[str, list] = {"loaded": [], "derived": []}
    real_load = AutoPipelineForText2Image.from_pretrained

    def counting_load(*args, **kwargs):
        pipe = real_load(*args, **kwargs)
        made["loaded"].append(pipe)
        return pipe

    monkeypatch.setattr(AutoPipelineForText2Image, "from_pretrained", counting_load)
    for auto_class in (AutoPipelineForImage2Image, AutoPipelineForInpainting):
        real_derive = auto_class.from_pipe

        def counting_derive(pipe, *args, _real=real_derive, **kwargs):
            derived = _real(pipe, *args, **kwargs)
            made["derived"].append(derived)
            return derived

        monkeypatch.setattr(auto_class, "from_pipe", counting_derive)
    return made


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_switching_types_reuses_the_loaded_weights(
    provider: DiffusersProvider, load_spy: dict[str, list]
) -> None:
    init, mask = solid((120, 120, 120)), half_mask("left")
    await generate(provider, request())
    await generate(provider, request())
    await generate(provider, request(GenerationType.img2img, init_image=init, strength=0.5))
    await generate(provider, request(GenerationType.inpaint, init_image=init, mask_image=mask))
    await generate(provider, request(GenerationType.img2img, init_image=init, strength=0.5))
    await generate(provider, request())

    assert provider.load_count == 1
    assert len(load_spy["loaded"]) == 1
    [text2img] = load_spy["loaded"]
    img2img, inpaint = load_spy["derived"]  # each derived once, then reused
    assert type(img2img).__name__ == "StableDiffusionImg2ImgPipeline"
    assert type(inpaint).__name__ == "StableDiffusionInpaintPipeline"
    for derived in (img2img, inpaint):
        assert derived.unet is text2img.unet
        assert derived.vae is text2img.vae
        assert derived.text_encoder is text2img.text_encoder


@pytest.mark.slow  # loads the tiny pipeline several times over
@pytest.mark.anyio
async def test_the_cache_keeps_the_most_recently_used_models(tiny_model_dir: Path) -> None:
    models = {name: str(tiny_model_dir) for name in ("a", "b", "c")}

    roomy = DiffusersProvider(models, cache_size=2)
    for name in ("a", "b", "a"):
        await generate(roomy, request(model=name, steps=1))
    assert roomy.load_count == 2
    assert roomy.loaded_models() == ["b", "a"]

    await generate(roomy, request(model="c", steps=1))  # evicts b, the least recently used
    assert roomy.loaded_models() == ["a", "c"]
    await generate(roomy, request(model="a", steps=1))
    assert roomy.load_count == 3

    tight = DiffusersProvider(models, cache_size=1)
    for name in ("a", "b", "a"):
        await generate(tight, request(model=name, steps=1))
    assert tight.load_count == 3
    assert tight.loaded_models() == ["a"]

    await tight.aclose()
    assert tight.loaded_models() == []


@pytest.mark.anyio
async def test_preload_warms_the_default_model_once(tiny_model_dir: Path) -> None:
    provider = DiffusersProvider({"first": str(tiny_model_dir), "second": str(tiny_model_dir)})
    await provider.preload()
    await provider.preload("first")
    assert provider.loaded_models() == ["first"]
    assert provider.load_count == 1

    await generate(provider, request(model="first", steps=1))
    assert provider.load_count == 1
    with pytest.raises(NotConfiguredError, match="'third'"):
        await provider.preload("third")


# ---- configuration ----


def test_a_ready_provider_has_no_configuration_problem(provider: DiffusersProvider) -> None:
    assert provider.configuration_problem() is None


def test_configuration_problem_names_the_missing_model_folder(tmp_path: Path, tiny_model_dir: Path) -> None:
    missing = tmp_path / "no-such-model"
    provider = DiffusersProvider({"tiny": str(tiny_model_dir), "sd15": str(missing)})
    problem = provider.configuration_problem()
    assert problem is not None
    assert "'sd15'" in problem
    assert str(missing) in problem
    assert "'tiny'" not in problem


def test_configuration_problem_for_a_folder_that_is_not_a_pipeline(tmp_path: Path) -> None:
    (tmp_path / "weights.safetensors").write_bytes(b"\0" * 16)
    problem = DiffusersProvider({"odd": str(tmp_path)}).configuration_problem()
    assert problem is not None
    assert "'odd'" in problem
    assert "model_index.json" in problem


def test_configuration_problem_without_models() -> None:
    assert DiffusersProvider({}).configuration_problem() == "no local diffusion models are configured"


def test_configuration_problem_says_what_to_install(
    provider: DiffusersProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        diffusers_module, "REQUIRED_PACKAGES", ("torch", "imagestudio_package_that_does_not_exist")
    )
    problem = provider.configuration_problem()
    assert problem is not None
    assert "install imagestudio[diffusers]" in problem
    assert "imagestudio_package_that_does_not_exist" in problem
    assert "torch," not in problem


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path) -> Path:
    """A Hugging Face cache folder in its real layout, holding the tiny model as local/tiny-sd."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / "models--local--tiny-sd"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.anyio
async def test_a_hub_id_is_served_from_the_local_cache(hub_cache: Path) -> None:
    provider = DiffusersProvider({"cached": "local/tiny-sd", "absent": "local/not-downloaded"})
    problem = provider.configuration_problem()
    assert problem == (
        "model 'absent': local/not-downloaded is neither a folder nor in the local Hugging Face cache"
    )

    result = await generate(provider, request(model="cached"))
    assert result.images[0].image.size == (SIZE, SIZE)
    with pytest.raises(NotConfiguredError, match="'absent'"):
        await generate(provider, request(model="absent"))


@pytest.mark.anyio
async def test_generating_with_a_missing_folder_is_not_configured(tmp_path: Path) -> None:
    provider = DiffusersProvider({"gone": str(tmp_path / "gone")})
    with pytest.raises(NotConfiguredError, match="'gone'"):
        await generate(provider, request(model="gone"))


@pytest.mark.anyio
async def test_a_corrupt_model_folder_fails_permanently_without_revealing_paths(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    broken = tmp_path / "private-models" / "broken"
    shutil.copytree(tiny_model_dir, broken)
    [weights] = list((broken / "unet").glob("*.safetensors"))
    weights.write_bytes(b"this is not a safetensors file")
    provider = DiffusersProvider({"broken": str(broken)})
    assert provider.configuration_problem() is None  # the folder looks right until loaded

    with pytest.raises(PermanentError) as caught:
        await generate(provider, request(model="broken"))

    assert caught.value.code == "model_load_failed"
    assert "'broken'" in caught.value.message
    assert "private-models" not in caught.value.message
    assert str(tmp_path) not in caught.value.message
    assert caught.value.__cause__ is None
    assert provider.loaded_models() == []


@pytest.mark.anyio
async def test_an_unreadable_model_index_fails_permanently(tmp_path: Path, tiny_model_dir: Path) -> None:
    broken = tmp_path / "broken-index"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model_index.json").write_text("{ not json")
    with pytest.raises(PermanentError, match="'broken-index'") as caught:
        await generate(DiffusersProvider({"broken-index": str(broken)}), request(model="broken-index"))
    assert str(tmp_path) not in caught.value.message


# ---- failures during a generation ----


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_out_of_memory_is_retriable_and_releases_the_pipe(provider: DiffusersProvider) -> None:
    def exhaust_memory(step: int, total: int) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    with pytest.raises(RetriableError) as caught:
        await provider.generate(request(), exhaust_memory, CancellationToken())
    assert caught.value.code == "out_of_memory"
    assert caught.value.retry_after and caught.value.retry_after > 0

    result = await generate(provider, request())
    assert len(result.images) == 1


@pytest.mark.slow  # the tiny pipeline run many times on CPU
@pytest.mark.anyio
async def test_images_flagged_by_a_safety_checker_are_rejected(
    provider: DiffusersProvider, load_spy: dict[str, list], monkeypatch: pytest.MonkeyPatch
) -> None:
    await generate(provider, request())
    [pipe] = load_spy["loaded"]
    # Stands in for the safety checker model shipped with SD 1.x, which cannot be downloaded here.
    monkeypatch.setattr(pipe, "run_safety_checker", lambda image, device, dtype: (image, [False, True]))

    with pytest.raises(ContentRejectedError, match="1 of 2"):
        await generate(provider, request(num_images=2))


@pytest.mark.anyio
async def test_too_few_steps_after_strength_is_a_permanent_error(provider: DiffusersProvider) -> None:
    with pytest.raises(PermanentError) as caught:
        await generate(
            provider, request(GenerationType.img2img, init_image=solid((1, 2, 3)), steps=2, strength=0.1)
        )
    assert caught.value.code == "invalid_request"
    assert "no denoising step" in caught.value.message


# ---- bad requests are refused before anything loads ----


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"type": GenerationType.upscale, "init_image": solid((0, 0, 0))}, "does not do upscale"),
        ({"type": GenerationType.variation, "init_image": solid((0, 0, 0))}, "does not do variation"),
        ({"type": GenerationType.img2img}, "needs a source image"),
        ({"type": GenerationType.inpaint, "init_image": solid((0, 0, 0))}, "needs a mask"),
        ({"model": "unknown"}, "unknown model"),
        ({"num_images": 0}, "num_images"),
        ({"num_images": 11}, "num_images"),
        ({"width": 70}, "multiple of 8"),
        ({"height": 32}, "between 64"),
        ({"width": 4096}, "between 64"),
        ({"steps": 0}, "steps"),
        ({"guidance": -1.0}, "guidance"),
        ({"strength": 0.0}, "strength"),
        ({"strength": 1.5}, "strength"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"scheduler": "warp_drive"}, "unknown scheduler"),
    ],
)
@pytest.mark.anyio
async def test_unservable_requests_are_refused(
    provider: DiffusersProvider, overrides: dict, message: str
) -> None:
    with pytest.raises(PermanentError, match=message) as caught:
        await generate(provider, request(**overrides))
    assert caught.value.code == "invalid_request"
    assert provider.load_count == 0


# ---- construction, capabilities, lazy import ----


def test_capabilities_describe_the_configured_models(tiny_model_dir: Path) -> None:
    provider = DiffusersProvider({"sd15": str(tiny_model_dir), "sdxl": "/models/sdxl"})
    caps = provider.capabilities()
    assert caps.types == {GenerationType.text2img, GenerationType.img2img, GenerationType.inpaint}
    assert [model.id for model in caps.models] == ["sd15", "sdxl"]
    assert caps.default_model == "sd15"
    assert caps.size_multiple == 8
    assert caps.honours_seed and caps.honours_negative_prompt and caps.honours_strength and caps.supports_mask
    assert caps.as_dict()["types"] == ["img2img", "inpaint", "text2img"]


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"cache_size": 0}, "cache_size"), ({"dtype": "fp8"}, "dtype")]
)
def test_bad_constructor_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DiffusersProvider({"tiny": "/models/tiny"}, **kwargs)


@pytest.mark.anyio
async def test_dtype_override_is_honoured(tiny_model_dir: Path) -> None:
    provider = DiffusersProvider({"tiny": str(tiny_model_dir)}, device="cpu", dtype="bf16")
    result = await generate(provider, request(steps=2))
    assert result.usage["dtype"] == "bfloat16"
    assert result.images[0].image.size == (SIZE, SIZE)


def test_configuration_problem_when_the_requested_device_is_absent(tiny_model_dir: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    problem = DiffusersProvider({"tiny": str(tiny_model_dir)}, device="cuda").configuration_problem()
    assert problem == "device cuda was requested but CUDA is not available"


@pytest.mark.parametrize(
    ("device", "family", "dtype"),
    [
        ("cuda", ModelFamily.sd, "float16"),
        ("cuda:1", ModelFamily.sdxl, "float16"),
        ("cuda", ModelFamily.flux, "bfloat16"),
        ("cuda", ModelFamily.sd3, "bfloat16"),
        ("mps", ModelFamily.sdxl, "float16"),
        ("cpu", ModelFamily.flux, "float32"),
    ],
)
def test_default_dtype_follows_device_and_family(device: str, family: ModelFamily, dtype: str) -> None:
    assert default_dtype(device, family) == dtype


@pytest.mark.parametrize(
    ("class_name", "family"),
    [
        ("StableDiffusionPipeline", ModelFamily.sd),
        ("StableDiffusionXLPipeline", ModelFamily.sdxl),
        ("StableDiffusion3Pipeline", ModelFamily.sd3),
        ("FluxPipeline", ModelFamily.flux),
        ("KandinskyV22Pipeline", ModelFamily.other),
    ],
)
def test_family_from_pipeline_class(class_name: str, family: ModelFamily) -> None:
    assert family_from_class_name(class_name) == family


def test_importing_the_provider_does_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import imagestudio.providers.diffusers as provider\n"
        "provider.DiffusersProvider({'x': '/nowhere'}).capabilities()\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'\n"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr


# ---- models found in folders ----


@pytest.mark.anyio
async def test_pipelines_in_the_model_folders_are_offered_and_refreshed(tmp_path: Path, tiny_model_dir: Path) -> None:
    shelf = tmp_path / "models"
    shelf.mkdir()
    shutil.copytree(tiny_model_dir, shelf / "tiny-one")
    (shelf / "notes").mkdir()  # no model_index.json: not a pipeline
    (shelf / "readme.txt").write_text("weights live here")
    provider = DiffusersProvider({"named": str(tiny_model_dir)}, model_dirs=[shelf, tmp_path / "missing"])
    assert provider.lists_models
    assert [model.id for model in provider.capabilities().models] == ["tiny-one", "named"]
    assert provider.configuration_problem() is None

    shutil.copytree(tiny_model_dir, shelf / "tiny-two")
    shutil.rmtree(shelf / "tiny-one")
    models = await provider.refresh()

    assert [model.id for model in models] == ["tiny-two", "named"]
    result = await generate(provider, request(model="tiny-two", num_images=1))
    assert len(result.images) == 1
    # A folder a configured id names wins over a found one of the same name.
    both = DiffusersProvider({"tiny-two": str(tiny_model_dir)}, model_dirs=[shelf])
    assert [model.id for model in both.capabilities().models] == ["tiny-two"]
    assert both._resolve_folder("tiny-two") == tiny_model_dir


@pytest.mark.anyio
async def test_a_folder_that_fills_later_is_found_by_the_registrys_refresh(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    shelf = tmp_path / "empty-shelf"
    shelf.mkdir()
    provider = DiffusersProvider({}, model_dirs=[shelf])
    assert "no diffusers pipeline folders" in (provider.configuration_problem() or "")
    registry = ProviderRegistry(default="diffusers")
    registry.register(provider)

    shutil.copytree(tiny_model_dir, shelf / "late-arrival")
    assert await registry.refresh() == {"diffusers": None}

    assert [model.id for model in provider.capabilities().models] == ["late-arrival"]
    assert provider.configuration_problem() is None


def test_without_model_folders_nothing_is_listed(tiny_model_dir: Path) -> None:
    assert not DiffusersProvider({"tiny": str(tiny_model_dir)}).lists_models
