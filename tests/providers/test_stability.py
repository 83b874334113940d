"""StabilityProvider against a fake Stability AI v2beta API that speaks the real wire format."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from PIL import Image

from imagestudio.providers.base import (
    CancellationToken,
    ContentRejectedError,
    GenerationCanceled,
    GenerationRequest,
    GenerationType,
    NotConfiguredError,
    PermanentError,
    Provider,
    ProviderError,
    RetriableError,
    UnsupportedRequest,
    check_request,
)
from imagestudio.providers.stability import StabilityProvider
from tests.fakes.common import Fault, ProgressLog, cancel_midway, client_for, colour_for, pixel_colour
from tests.fakes.stability import BASE_URL, FakeStability, stability_provider
from tests.providers.conformance import ProviderConformance

pytestmark = pytest.mark.anyio

CANARY_KEY = "sk-canaryStab1l1tyKey5e7a9b1c2d3e4f5a6b7c8d9e0f"
GREEN = (30, 160, 60)
PROMPT = "a fox in the snow"


@pytest.fixture
def fake() -> FakeStability:
    return FakeStability(api_key=CANARY_KEY)


@pytest.fixture
async def provider(fake: FakeStability) -> AsyncIterator[StabilityProvider]:
    """A configured provider bound to the fake (the shape a conformance suite can reuse)."""
    async with client_for(fake.app, BASE_URL) as client:
        yield stability_provider(fake, client, timeout=2.0)


def make_request(**overrides) -> GenerationRequest:
    fields = {
        "type": GenerationType.text2img,
        "prompt": PROMPT,
        "model": "stable-image-core",
        "width": 1024,
        "height": 1024,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


async def run(
    provider: StabilityProvider,
    request: GenerationRequest,
    cancel: CancellationToken | None = None,
    progress: ProgressLog | None = None,
):
    progress = progress or ProgressLog()
    result = await provider.generate(request, progress, cancel or CancellationToken())
    return result, progress


def green(size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, GREEN)


# ---- shape and capabilities ----


def test_provider_satisfies_the_protocol(fake: FakeStability) -> None:
    provider = stability_provider(fake)
    assert isinstance(provider, Provider)
    caps = provider.capabilities()
    assert caps.honours_seed and caps.honours_negative_prompt and caps.honours_strength and caps.supports_mask
    assert caps.types == {
        GenerationType.text2img,
        GenerationType.img2img,
        GenerationType.inpaint,
        GenerationType.upscale,
    }
    assert caps.model("stable-image-core").aspect_ratios == (
        "16:9",
        "1:1",
        "21:9",
        "2:3",
        "3:2",
        "4:5",
        "5:4",
        "9:16",
        "9:21",
    )
    assert caps.model("upscale-creative").max_images == 1
    assert caps.upscale_factors == (4,)


@pytest.mark.parametrize(
    ("model", "kind", "num_images", "upscale_factor", "field"),
    [
        ("stable-image-core", GenerationType.img2img, 1, None, "type"),
        ("stable-image-core", GenerationType.inpaint, 1, None, "type"),
        ("upscale-fast", GenerationType.upscale, 2, None, "num_images"),
        ("upscale-fast", GenerationType.upscale, 1, 2, "upscale_factor"),
        ("sd3.5-large", GenerationType.text2img, 11, None, "num_images"),
        ("sdxl-1.0", GenerationType.text2img, 1, None, "model"),
    ],
)
def test_check_request_refuses_what_the_models_cannot_do(
    fake: FakeStability, model, kind, num_images, upscale_factor, field
) -> None:
    with pytest.raises(UnsupportedRequest) as caught:
        check_request(
            stability_provider(fake).capabilities(),
            type=kind,
            model=model,
            num_images=num_images,
            width=1024,
            height=1024,
            has_init=True,
            has_mask=True,
            upscale_factor=upscale_factor,
        )
    assert caught.value.field == field


# ---- generation ----


async def test_core_batch_sends_one_multipart_request_per_image(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    result, progress = await run(
        provider, make_request(num_images=3, seed=41, negative_prompt="blurry", width=1600, height=900)
    )

    assert len(fake.requests) == 3
    for index, seen in enumerate(fake.requests):
        assert (seen.method, seen.path) == ("POST", "/v2beta/stable-image/generate/core")
        assert seen.headers["authorization"] == f"Bearer {CANARY_KEY}"
        assert seen.headers["accept"] == "image/*"
        assert seen.content_type.startswith("multipart/form-data")
        assert seen.fields == {
            "prompt": [PROMPT],
            "output_format": ["png"],
            "aspect_ratio": ["16:9"],
            "negative_prompt": ["blurry"],
            "seed": [str(41 + index)],
        }
    assert [g.seed for g in result.images] == [41, 42, 43]
    assert [g.image.size for g in result.images] == [(1344, 768)] * 3
    assert pixel_colour(result.images[0].image, 0, 0) == colour_for(PROMPT)
    assert progress.calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    assert result.model == "stable-image-core" and result.usage == {"requests": 3}
    assert result.cost == Decimal("0.090000")  # three images at 3 credits of $0.01


async def test_an_explicit_aspect_ratio_wins_and_the_service_seed_is_reported(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    result, _ = await run(provider, make_request(aspect_ratio="9:21", width=1024, height=1024))
    assert fake.last.field("aspect_ratio") == "9:21"
    assert "seed" not in fake.last.fields
    assert result.images[0].seed is not None and result.images[0].seed > 0
    assert result.images[0].image.size == (640, 1536)


async def test_sd35_img2img_uses_mode_strength_and_cfg_scale(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    source = green((512, 512))
    result, _ = await run(
        provider,
        make_request(
            model="sd3.5-large", type=GenerationType.img2img, init_image=source, strength=0.4, guidance=5
        ),
    )
    seen = fake.last
    assert seen.path == "/v2beta/stable-image/generate/sd3"
    assert seen.fields == {
        "prompt": [PROMPT],
        "output_format": ["png"],
        "model": ["sd3.5-large"],
        "mode": ["image-to-image"],
        "strength": ["0.4"],
        "cfg_scale": ["5"],
    }
    assert seen.file("image").image().size == (512, 512)
    # The fake blends the source toward the prompt colour by the strength it received.
    expected = tuple(round(g * 0.6 + p * 0.4) for g, p in zip(GREEN, colour_for(PROMPT), strict=True))
    assert all(
        abs(a - b) <= 1 for a, b in zip(pixel_colour(result.images[0].image, 5, 5), expected, strict=True)
    )


async def test_sd35_text2img_sends_the_ratio_and_turbo_drops_the_negative_prompt(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    await run(provider, make_request(model="sd3.5-medium", negative_prompt="fog", width=832, height=1216))
    assert fake.last.fields["mode"] == ["text-to-image"]
    assert fake.last.fields["aspect_ratio"] == ["2:3"]
    assert fake.last.fields["negative_prompt"] == ["fog"]
    await run(provider, make_request(model="sd3.5-large-turbo", negative_prompt="fog"))
    assert fake.last.fields["model"] == ["sd3.5-large-turbo"]
    assert "negative_prompt" not in fake.last.fields


async def test_ultra_img2img_defaults_the_strength(provider: StabilityProvider, fake: FakeStability) -> None:
    await run(
        provider,
        make_request(model="stable-image-ultra", type=GenerationType.img2img, init_image=green((256, 256))),
    )
    assert fake.last.path == "/v2beta/stable-image/generate/ultra"
    assert fake.last.field("strength") == "0.6"
    assert "aspect_ratio" not in fake.last.fields


async def test_inpaint_sends_our_mask_as_is(provider: StabilityProvider, fake: FakeStability) -> None:
    source = green((512, 512))
    mask = Image.new("L", (256, 256), 0)
    mask.paste(255, (0, 0, 128, 256))  # left half: repaint
    result, _ = await run(
        provider,
        make_request(
            model="stable-image-inpaint",
            type=GenerationType.inpaint,
            init_image=source,
            mask_image=mask,
            seed=7,
            extra={"grow_mask": 0},
        ),
    )
    seen = fake.last
    assert seen.path == "/v2beta/stable-image/edit/inpaint"
    assert seen.field("grow_mask") == "0" and seen.field("seed") == "7"
    sent_mask = seen.file("mask").image()
    assert sent_mask.size == (512, 512)  # resized to the image
    assert sent_mask.getpixel((10, 10)) == 255 and sent_mask.getpixel((500, 10)) == 0
    painted = result.images[0].image
    assert pixel_colour(painted, 10, 10) == colour_for(PROMPT)
    assert pixel_colour(painted, 500, 10) == GREEN
    assert result.images[0].seed == 7


# ---- upscaling ----


async def test_fast_upscale_is_four_times(provider: StabilityProvider, fake: FakeStability) -> None:
    result, progress = await run(
        provider, make_request(model="upscale-fast", type=GenerationType.upscale, init_image=green((64, 48)))
    )
    assert fake.last.path == "/v2beta/stable-image/upscale/fast"
    assert fake.last.fields == {"output_format": ["png"]}
    assert result.images[0].image.size == (256, 192)
    assert pixel_colour(result.images[0].image, 100, 100) == GREEN
    assert progress.calls == [(0, 1), (1, 1)]


async def test_conservative_upscale_sends_the_prompt(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    result, _ = await run(
        provider,
        make_request(
            model="upscale-conservative",
            type=GenerationType.upscale,
            init_image=green((64, 64)),
            negative_prompt="noise",
            seed=5,
            extra={"creativity": 0.3},
        ),
    )
    assert fake.last.path == "/v2beta/stable-image/upscale/conservative"
    assert fake.last.fields == {
        "output_format": ["png"],
        "prompt": [PROMPT],
        "negative_prompt": ["noise"],
        "seed": ["5"],
        "creativity": ["0.3"],
    }
    assert result.images[0].image.size == (2048, 2048)


@pytest.mark.parametrize(("model", "source"), [("upscale-conservative", (300, 200)), ("upscale-creative", (128, 320))])
async def test_an_upscale_comes_back_at_the_size_its_model_promises(
    provider: StabilityProvider, model: str, source: tuple[int, int]
) -> None:
    result, _ = await run(provider, make_request(model=model, type=GenerationType.upscale, init_image=green(source)))
    promised = provider.capabilities().model(model).upscale.output_size(source, 4)  # type: ignore[union-attr]
    assert result.images[0].image.size == promised


async def test_a_source_the_upscaler_refuses_is_not_sent(provider: StabilityProvider, fake: FakeStability) -> None:
    with pytest.raises(PermanentError, match=r"no longer than 2\.5 to 1"):
        await run(
            provider,
            make_request(model="upscale-conservative", type=GenerationType.upscale, init_image=green((640, 128))),
        )
    assert fake.requests == []


async def test_creative_upscale_polls_until_the_result_is_ready(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.creative_pending_polls = 2
    result, progress = await run(
        provider,
        make_request(model="upscale-creative", type=GenerationType.upscale, init_image=green((128, 128))),
    )
    start, *polls = fake.requests
    assert (start.method, start.path) == ("POST", "/v2beta/stable-image/upscale/creative")
    assert len(polls) == 3  # two 202s, then the image
    job_paths = {p.path for p in polls}
    assert len(job_paths) == 1 and next(iter(job_paths)).startswith("/v2beta/results/")
    assert all(p.method == "GET" and p.headers["accept"] == "image/*" for p in polls)
    assert all(p.headers["authorization"] == f"Bearer {CANARY_KEY}" for p in polls)
    assert result.images[0].image.size == (2048, 2048)
    assert fake.open_jobs == 0
    assert progress.calls == [(0, 1), (1, 1)]


async def test_creative_upscale_that_never_finishes_times_out(fake: FakeStability) -> None:
    fake.creative_pending_polls = 10_000
    async with client_for(fake.app, BASE_URL) as client:
        provider = stability_provider(fake, client, poll_timeout=0.1)
        with pytest.raises(RetriableError) as caught:
            await run(
                provider,
                make_request(
                    model="upscale-creative", type=GenerationType.upscale, init_image=green((128, 128))
                ),
            )
    assert caught.value.code == "provider_timeout"


@pytest.mark.parametrize(
    ("model", "size", "prompt", "needle"),
    [
        ("upscale-fast", (2048, 2048), PROMPT, "32 to 1536"),
        ("upscale-fast", (1536, 1024), PROMPT, "1,048,576"),
        ("upscale-creative", (1200, 1200), PROMPT, "1,048,576"),
        ("upscale-conservative", (64, 64), "  ", "needs a prompt"),
    ],
)
async def test_upscale_inputs_outside_the_limits_are_refused_before_upload(
    provider: StabilityProvider, fake: FakeStability, model, size, prompt, needle
) -> None:
    with pytest.raises(PermanentError, match=needle):
        await run(
            provider,
            make_request(model=model, type=GenerationType.upscale, init_image=green(size), prompt=prompt),
        )
    assert fake.requests == []


# ---- failures ----


async def test_a_wrong_key_is_a_permanent_auth_failure(fake: FakeStability) -> None:
    async with client_for(fake.app, BASE_URL) as client:
        provider = stability_provider(fake, client, api_key="sk-not-the-right-one")
        with pytest.raises(PermanentError) as caught:
            await run(provider, make_request())
    assert caught.value.code == "provider_auth_failed"
    assert "401 unauthorized" in caught.value.message


@pytest.mark.parametrize(
    ("fault", "expected_wait"),
    [(Fault.rate_limit(retry_after=7), 7.0), (Fault.rate_limit(retry_after=None), 60.0)],
)
async def test_rate_limits_are_retriable(
    provider: StabilityProvider, fake: FakeStability, fault, expected_wait
) -> None:
    fake.fail_next(fault)
    with pytest.raises(RetriableError) as caught:
        await run(provider, make_request())
    assert caught.value.retry_after == expected_wait
    assert caught.value.code == "provider_rate_limited"
    assert "rate_limit_exceeded" in caught.value.message


async def test_payment_required_is_permanent(provider: StabilityProvider, fake: FakeStability) -> None:
    fake.fail_next(Fault.quota())
    with pytest.raises(PermanentError) as caught:
        await run(provider, make_request())
    assert caught.value.code == "provider_quota_exceeded"
    assert "402" in caught.value.message


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (503, 12.0)])
async def test_server_errors_are_retriable(
    provider: StabilityProvider, fake: FakeStability, status, retry_after
) -> None:
    fake.fail_next(Fault.server_error(status, retry_after=retry_after))
    with pytest.raises(RetriableError) as caught:
        await run(provider, make_request())
    assert caught.value.retry_after == retry_after


@pytest.mark.parametrize("where", ["request", "output"])
async def test_content_moderation_is_a_content_rejection(
    provider: StabilityProvider, fake: FakeStability, where
) -> None:
    fake.fail_next(Fault.content_rejection(where=where))
    with pytest.raises(ContentRejectedError):
        await run(provider, make_request())


async def test_a_filtered_image_in_a_batch_stops_the_batch(
    provider: StabilityProvider, fake: FakeStability
) -> None:
    fake.fail_next(Fault.slow(0), Fault.content_rejection(where="output"))
    with pytest.raises(ContentRejectedError):
        await run(provider, make_request(num_images=4))
    assert len(fake.requests) == 2


@pytest.mark.parametrize("shape", ["truncated", "json"])
async def test_malformed_answers_are_permanent(
    provider: StabilityProvider, fake: FakeStability, shape
) -> None:
    fake.fail_next(Fault.malformed(shape=shape))
    with pytest.raises(PermanentError) as caught:
        await run(provider, make_request())
    assert caught.value.code == "provider_bad_response"


async def test_a_slow_answer_times_out_as_retriable(fake: FakeStability) -> None:
    fake.fail_next(Fault.slow(30))
    async with client_for(fake.app, BASE_URL) as client:
        provider = stability_provider(fake, client, timeout=0.2)
        started = time.monotonic()
        with pytest.raises(RetriableError) as caught:
            await run(provider, make_request())
    assert time.monotonic() - started < 15, "the slow answer (30 s) was waited for"
    assert caught.value.code == "provider_timeout"


async def test_cancel_during_a_slow_request(provider: StabilityProvider, fake: FakeStability) -> None:
    fake.fail_next(Fault.slow(30))
    cancel = CancellationToken()
    started = time.monotonic()
    outcome = await cancel_midway(lambda: run(provider, make_request(), cancel), cancel, after=0.1)
    assert isinstance(outcome, GenerationCanceled)
    assert time.monotonic() - started < 15, "the slow answer (30 s) was waited for"
    assert fake.completed == 0


async def test_cancel_during_creative_polling(provider: StabilityProvider, fake: FakeStability) -> None:
    fake.creative_pending_polls = 10_000
    cancel = CancellationToken()
    request = make_request(
        model="upscale-creative", type=GenerationType.upscale, init_image=green((128, 128))
    )
    task = asyncio.create_task(run(provider, request, cancel))

    def polls() -> list:
        return [r for r in fake.requests if r.method == "GET"]

    # Cancel once the adapter is polling, however long the upload took.
    for _ in range(1000):
        if polls() or task.done():
            break
        await asyncio.sleep(0.01)
    assert polls(), "the adapter should have polled before the cancel"
    cancel.cancel()
    with pytest.raises(GenerationCanceled):
        await asyncio.wait_for(task, timeout=15)
    assert fake.completed == 0


async def test_cancel_between_images_of_a_batch(provider: StabilityProvider, fake: FakeStability) -> None:
    cancel = CancellationToken()

    class CancelAfterFirst(ProgressLog):
        def __call__(self, step: int, total: int) -> None:
            super().__call__(step, total)
            if step == 1:
                cancel.cancel()

    with pytest.raises(GenerationCanceled):
        await run(provider, make_request(num_images=3), cancel, CancelAfterFirst())
    assert len(fake.requests) == 1


async def test_a_missing_key_is_not_configured(fake: FakeStability) -> None:
    async with client_for(fake.app, BASE_URL) as client:
        provider = StabilityProvider(None, client=client)
        assert (
            provider.configuration_problem() == "Stability AI API key not set (IMAGESTUDIO_STABILITY_API_KEY)"
        )
        with pytest.raises(NotConfiguredError):
            await run(provider, make_request())
    assert fake.requests == []


async def test_the_key_never_leaks_into_errors_logs_or_repr(
    fake: FakeStability, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = [
        Fault.rate_limit(),
        Fault.quota(),
        Fault.server_error(500),
        Fault.content_rejection(where="request"),
        Fault.content_rejection(where="output"),
        Fault.malformed(),
        Fault.slow(30),
    ]
    errors: list[BaseException] = []
    async with client_for(fake.app, BASE_URL) as client:
        provider = stability_provider(fake, client, timeout=0.2)
        for fault in faults:
            fake.fail_next(fault)
            with pytest.raises(ProviderError) as caught:
                await run(provider, make_request())
            errors.append(caught.value)
        wrong = stability_provider(fake, client, api_key=CANARY_KEY[::-1])
        with pytest.raises(PermanentError) as caught:
            await run(wrong, make_request())
        errors.append(caught.value)
        assert CANARY_KEY not in repr(provider)
    for error in errors:
        assert CANARY_KEY not in str(error) and CANARY_KEY not in repr(error)
    assert all(CANARY_KEY not in record.getMessage() for record in caplog.records)
    assert CANARY_KEY not in caplog.text


# ---- the fake refuses what the real API refuses ----


async def test_the_fake_requires_multipart_and_known_fields(fake: FakeStability) -> None:
    headers = {"Authorization": f"Bearer {CANARY_KEY}", "Accept": "image/*"}
    async with client_for(fake.app, BASE_URL) as client:
        as_json = await client.post(
            "/v2beta/stable-image/generate/core", headers=headers, json={"prompt": "x"}
        )
        unknown = await client.post(
            "/v2beta/stable-image/generate/core",
            headers=headers,
            files=[("prompt", (None, "x")), ("steps", (None, "30"))],
        )
        no_key = await client.post("/v2beta/stable-image/generate/core", files=[("prompt", (None, "x"))])
    assert as_json.status_code == 400 and as_json.json()["errors"] == [
        "content-type: must be multipart/form-data"
    ]
    assert unknown.status_code == 400 and unknown.json()["errors"] == ["steps: unknown field"]
    assert no_key.status_code == 401
    assert set(no_key.json()) == {"id", "name", "errors"} and no_key.json()["name"] == "unauthorized"


class TestStabilityConformance(ProviderConformance):
    """The shared provider contract, against the fake service."""

    exact_size = False

    @pytest.fixture
    async def provider(self, fake: FakeStability) -> AsyncIterator[StabilityProvider]:
        async with client_for(fake.app, BASE_URL) as client:
            adapter = stability_provider(fake, client, timeout=2.0)
            yield adapter
            await adapter.aclose()
