"""OpenAIProvider against a fake OpenAI Images API that speaks the real wire format."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
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
from imagestudio.providers.openai import OpenAIProvider
from tests.fakes.common import Fault, ProgressLog, cancel_midway, client_for, colour_for, pixel_colour
from tests.fakes.openai import BASE_URL, FakeOpenAI, openai_provider
from tests.providers.conformance import ProviderConformance

pytestmark = pytest.mark.anyio

CANARY_KEY = "sk-canary-7f3c9e1d2b4a6f8e0c1d3e5f7a9b1c2d"
BLUE = (20, 40, 200)


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(api_key=CANARY_KEY)


@pytest.fixture
async def provider(fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    """A configured provider bound to the fake (the shape a conformance suite can reuse)."""
    async with client_for(fake.app, BASE_URL) as client:
        yield openai_provider(fake, client, timeout=2.0)


def make_request(**overrides) -> GenerationRequest:
    fields = {
        "type": GenerationType.text2img,
        "prompt": "a lighthouse at dusk",
        "model": "gpt-image-1",
        "width": 1024,
        "height": 1024,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


async def run(provider: OpenAIProvider, request: GenerationRequest, cancel: CancellationToken | None = None):
    progress = ProgressLog()
    result = await provider.generate(request, progress, cancel or CancellationToken())
    return result, progress


def blue(size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, BLUE)


def left_half_mask(size: tuple[int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    return mask


# ---- shape and capabilities ----


def test_provider_satisfies_the_protocol(fake: FakeOpenAI) -> None:
    provider = openai_provider(fake)
    assert isinstance(provider, Provider)
    assert provider.name == "openai" and provider.kind == "openai"
    caps = provider.capabilities()
    assert caps.default_model == "gpt-image-1"
    assert not caps.honours_seed and not caps.honours_negative_prompt
    # Before the service is asked: the gpt-image models known here; DALL·E is retired.
    assert [m.id for m in caps.models] == ["gpt-image-1", "gpt-image-1-mini"]
    assert GenerationType.upscale not in caps.types and GenerationType.variation not in caps.types


@pytest.mark.parametrize(
    ("model", "kind", "num_images", "width", "height", "field"),
    [
        ("gpt-image-1", GenerationType.text2img, 11, 1024, 1024, "num_images"),
        ("gpt-image-1", GenerationType.text2img, 1, 512, 512, "width"),
        ("gpt-image-1-mini", GenerationType.text2img, 1, 1792, 1024, "width"),
        ("gpt-image-1", GenerationType.variation, 1, 1024, 1024, "type"),
        ("gpt-image-1", GenerationType.upscale, 1, 1024, 1024, "type"),
        ("dall-e-3", GenerationType.text2img, 1, 1024, 1024, "model"),
        ("dall-e-2", GenerationType.text2img, 1, 1024, 1024, "model"),
    ],
)
def test_check_request_refuses_what_the_models_cannot_do(
    fake: FakeOpenAI, model, kind, num_images, width, height, field
) -> None:
    caps = openai_provider(fake).capabilities()
    with pytest.raises(UnsupportedRequest) as caught:
        check_request(
            caps,
            type=kind,
            model=model,
            num_images=num_images,
            width=width,
            height=height,
            has_init=True,
            has_mask=True,
        )
    assert caught.value.field == field


async def test_generate_refuses_an_unservable_request_without_calling_the_api(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    with pytest.raises(PermanentError) as caught:
        await run(provider, make_request(model="dall-e-3"))
    assert caught.value.code == "unsupported_request"
    assert "unknown model 'dall-e-3'" in caught.value.message
    assert fake.requests == []


@pytest.mark.parametrize(
    ("model", "kind", "extra", "option"),
    [
        ("gpt-image-1", GenerationType.text2img, {"quality": "hd"}, "quality"),
        ("gpt-image-1", GenerationType.text2img, {"background": "clear"}, "background"),
        ("gpt-image-1", GenerationType.text2img, {"background": "transparent", "output_format": "jpeg"}, "background"),
        ("gpt-image-1", GenerationType.text2img, {"output_compression": 50}, "output_compression"),
        (
            "gpt-image-1",
            GenerationType.text2img,
            {"output_format": "webp", "output_compression": 101},
            "output_compression",
        ),
        ("gpt-image-1", GenerationType.text2img, {"moderation": "off"}, "moderation"),
        ("gpt-image-1", GenerationType.text2img, {"input_fidelity": "high"}, "input_fidelity"),
        ("gpt-image-1-mini", GenerationType.img2img, {"input_fidelity": "high"}, "input_fidelity"),
    ],
)
async def test_an_option_the_api_would_refuse_is_refused_before_the_call(
    provider: OpenAIProvider, fake: FakeOpenAI, model, kind, extra, option
) -> None:
    init = blue((1024, 1024)) if kind != GenerationType.text2img else None
    with pytest.raises(PermanentError) as caught:
        await run(provider, make_request(model=model, type=kind, init_image=init, extra=extra))
    assert caught.value.code == "unsupported_request"
    assert option in caught.value.message
    assert fake.requests == []


# ---- successes ----


async def test_gpt_image_1_text2img_sends_json_and_returns_every_image(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    result, progress = await run(
        provider, make_request(num_images=2, width=1536, height=1024, extra={"quality": "high"})
    )

    seen = fake.last
    assert (seen.method, seen.path) == ("POST", "/v1/images/generations")
    assert seen.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert seen.content_type.startswith("application/json")
    assert seen.json == {
        "model": "gpt-image-1",
        "prompt": "a lighthouse at dusk",
        "n": 2,
        "size": "1536x1024",
        "quality": "high",
    }
    assert len(result.images) == 2
    for generated in result.images:
        assert generated.image.size == (1536, 1024)
        assert pixel_colour(generated.image, 10, 10) == colour_for("a lighthouse at dusk")
        assert generated.seed is None
    assert result.model == "gpt-image-1"
    assert result.usage["output_tokens"] == 544 and result.usage["total_tokens"] == 594
    # The default price table: 50 text tokens at $5/M and 544 output tokens at $40/M.
    assert result.cost == Decimal("0.022010")
    assert progress.calls == [(0, 1), (1, 1)]


async def test_gpt_image_options_reach_the_api_and_a_transparent_webp_comes_back(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    options = {
        "quality": "low",
        "background": "transparent",
        "output_format": "webp",
        "output_compression": 80,
        "moderation": "low",
    }
    result, _ = await run(provider, make_request(model="gpt-image-1-mini", extra=options))
    assert fake.last.json == {
        "model": "gpt-image-1-mini",
        "prompt": "a lighthouse at dusk",
        "n": 1,
        "size": "1024x1024",
        **options,
    }
    image = result.images[0].image
    assert image.format == "WEBP" and image.mode == "RGBA"
    assert image.getchannel("A").getextrema() == (0, 0)


async def test_input_fidelity_goes_with_an_edit(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    await run(
        provider,
        make_request(type=GenerationType.img2img, init_image=blue((1024, 1024)), extra={"input_fidelity": "high"}),
    )
    assert fake.last.path == "/v1/images/edits"
    assert fake.last.field("input_fidelity") == "high"


async def test_link_answers_of_a_compatible_server_are_fetched_without_the_key(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    fake.answer_with = "url"
    result, _ = await run(provider, make_request(num_images=2))
    assert len(result.images) == 2
    assert pixel_colour(result.images[0].image, 3, 3) == colour_for("a lighthouse at dusk")
    assert [r.path for r in fake.file_requests] == ["/files/img-0.png", "/files/img-1.png"]
    assert all("authorization" not in r.headers for r in fake.file_requests)


async def test_a_broken_image_link_fails_the_generation(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.answer_with = "url"
    original = fake._images_response

    def dangling(*args, **kwargs):
        response = original(*args, **kwargs)
        fake.files.clear()  # the links now point at nothing
        return response

    fake._images_response = dangling  # type: ignore[method-assign]
    with pytest.raises(PermanentError) as caught:
        await run(provider, make_request())
    assert "404" in caught.value.message


async def test_gpt_image_1_inpaint_sends_an_rgba_mask_transparent_where_ours_is_white(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    init = blue((1024, 1024))
    mask = left_half_mask((1024, 1024))
    result, progress = await run(
        provider, make_request(type=GenerationType.inpaint, init_image=init, mask_image=mask, num_images=2)
    )

    seen = fake.last
    assert (seen.method, seen.path) == ("POST", "/v1/images/edits")
    assert seen.content_type.startswith("multipart/form-data")
    assert seen.fields == {
        "prompt": ["a lighthouse at dusk"],
        "model": ["gpt-image-1"],
        "n": ["2"],
        "size": ["1024x1024"],
    }
    assert len(seen.files["image[]"]) == 1
    sent_mask = seen.file("mask").image()
    assert sent_mask.format == "PNG" and sent_mask.mode == "RGBA" and sent_mask.size == (1024, 1024)
    alpha = sent_mask.getchannel("A")
    assert alpha.getpixel((100, 500)) == 0  # our white (repaint) is transparent
    assert alpha.getpixel((900, 500)) == 255  # our black (keep) is opaque

    # The fake repaints exactly where the mask is transparent: the left half only.
    painted = result.images[0].image
    assert pixel_colour(painted, 100, 500) == colour_for("a lighthouse at dusk")
    assert pixel_colour(painted, 900, 500) == BLUE
    assert len(result.images) == 2
    assert progress.calls == [(0, 1), (1, 1)]


async def test_gpt_image_1_mask_is_resized_to_the_source(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    init = blue((800, 600))
    mask = left_half_mask((400, 300))
    await run(provider, make_request(type=GenerationType.inpaint, init_image=init, mask_image=mask))
    sent_mask = fake.last.file("mask").image()
    assert sent_mask.size == (800, 600)
    assert sent_mask.getchannel("A").getpixel((10, 10)) == 0


async def test_gpt_image_1_img2img_uploads_the_source_and_references(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    references = [Image.new("RGB", (64, 64), (255, 0, 0)), Image.new("RGB", (64, 64), (0, 255, 0))]
    result, _ = await run(
        provider,
        make_request(type=GenerationType.img2img, init_image=blue((1024, 1024)), reference_images=references),
    )
    seen = fake.last
    assert seen.path == "/v1/images/edits"
    uploaded = [f.image() for f in seen.files["image[]"]]
    assert [img.size for img in uploaded] == [(1024, 1024), (64, 64), (64, 64)]
    assert pixel_colour(uploaded[0], 0, 0) == BLUE
    assert "mask" not in seen.files
    assert result.images[0].image.size == (1024, 1024)


async def test_gpt_image_1_text_prompt_with_references_goes_through_edits(
    provider: OpenAIProvider, fake: FakeOpenAI
) -> None:
    await run(provider, make_request(reference_images=[blue((128, 128))]))
    assert fake.last.path == "/v1/images/edits"
    assert len(fake.last.files["image[]"]) == 1


# ---- failures ----


async def test_a_wrong_key_is_a_permanent_auth_failure(fake: FakeOpenAI) -> None:
    async with client_for(fake.app, BASE_URL) as client:
        provider = openai_provider(fake, client, api_key="sk-someone-elses-key-9999")
        with pytest.raises(PermanentError) as caught:
            await run(provider, make_request())
    assert caught.value.code == "provider_auth_failed"
    assert "401" in caught.value.message and "Incorrect API key" in caught.value.message
    assert "sk-someone-elses-key-9999" not in str(caught.value)


@pytest.mark.parametrize(
    ("fault", "expected_wait"),
    [
        (Fault.rate_limit(retry_after=7), 7.0),
        (Fault.rate_limit(retry_after=None, reset="1m30s"), 90.0),
    ],
)
async def test_rate_limits_are_retriable_with_the_server_hint(
    provider: OpenAIProvider, fake: FakeOpenAI, fault, expected_wait
) -> None:
    fake.fail_next(fault)
    with pytest.raises(RetriableError) as caught:
        await run(provider, make_request())
    assert caught.value.retry_after == expected_wait
    assert caught.value.code == "provider_rate_limited"


async def test_an_exhausted_quota_is_permanent(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.fail_next(Fault.quota())
    with pytest.raises(PermanentError) as caught:
        await run(provider, make_request())
    assert caught.value.code == "provider_quota_exceeded"


@pytest.mark.parametrize(("status", "retry_after"), [(500, None), (503, 3.0)])
async def test_server_errors_are_retriable(provider: OpenAIProvider, fake: FakeOpenAI, status, retry_after) -> None:
    fake.fail_next(Fault.server_error(status, retry_after=retry_after))
    with pytest.raises(RetriableError) as caught:
        await run(provider, make_request())
    assert str(status) in caught.value.message
    assert caught.value.retry_after == retry_after


async def test_safety_refusals_are_content_rejections(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.fail_next(Fault.content_rejection())
    with pytest.raises(ContentRejectedError) as caught:
        await run(provider, make_request())
    assert "rejected by the safety system" in caught.value.message
    assert caught.value.code == "content_rejected"


@pytest.mark.parametrize("shape", ["truncated", "no_data", "not_image"])
async def test_malformed_answers_are_permanent(provider: OpenAIProvider, fake: FakeOpenAI, shape) -> None:
    fake.fail_next(Fault.malformed(shape=shape))
    with pytest.raises(PermanentError) as caught:
        await run(provider, make_request())
    assert caught.value.code == "provider_bad_response"


async def test_a_slow_answer_times_out_as_retriable(fake: FakeOpenAI) -> None:
    fake.fail_next(Fault.slow(30))
    async with client_for(fake.app, BASE_URL) as client:
        provider = openai_provider(fake, client, timeout=0.2)
        started = time.monotonic()
        with pytest.raises(RetriableError) as caught:
            await run(provider, make_request())
    assert time.monotonic() - started < 15, "the slow answer (30 s) was waited for"
    assert caught.value.code == "provider_timeout"
    assert fake.completed == 0


async def test_a_connection_failure_is_retriable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        provider = OpenAIProvider(CANARY_KEY, client=client)
        with pytest.raises(RetriableError, match="ConnectError"):
            await run(provider, make_request())


async def test_a_token_set_before_the_call_sends_nothing(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    cancel = CancellationToken()
    cancel.cancel()
    with pytest.raises(GenerationCanceled):
        await run(provider, make_request(), cancel)
    assert fake.requests == []


async def test_cancel_during_a_slow_request_abandons_it(provider: OpenAIProvider, fake: FakeOpenAI) -> None:
    fake.fail_next(Fault.slow(30))
    cancel = CancellationToken()
    started = time.monotonic()
    outcome = await cancel_midway(lambda: run(provider, make_request(), cancel), cancel, after=0.1)
    assert isinstance(outcome, GenerationCanceled)
    assert time.monotonic() - started < 15, "the slow answer (30 s) was waited for"
    assert len(fake.requests) == 1 and fake.completed == 0


async def test_a_missing_key_is_not_configured(fake: FakeOpenAI) -> None:
    async with client_for(fake.app, BASE_URL) as client:
        for key in (None, "", "   "):
            provider = OpenAIProvider(key, client=client)
            assert provider.configuration_problem() == "OpenAI API key not set (IMAGESTUDIO_OPENAI_API_KEY)"
            with pytest.raises(NotConfiguredError, match="IMAGESTUDIO_OPENAI_API_KEY"):
                await run(provider, make_request())
    assert fake.requests == []


async def test_a_configured_provider_has_no_problem(provider: OpenAIProvider) -> None:
    assert provider.configuration_problem() is None


async def test_the_key_never_leaks_into_errors_logs_or_repr(fake: FakeOpenAI, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    faults = [
        Fault.rate_limit(),
        Fault.quota(),
        Fault.server_error(500),
        Fault.content_rejection(),
        Fault.malformed(),
        Fault.malformed(shape="not_image"),
        Fault.slow(30),
    ]
    async with client_for(fake.app, BASE_URL) as client:
        provider = openai_provider(fake, client, timeout=0.2)
        for fault in faults:
            fake.fail_next(fault)
            with pytest.raises(ProviderError) as caught:
                await run(provider, make_request())
            errors.append(caught.value)
        # A service that echoed the key verbatim would still not get it through.
        wrong = openai_provider(fake, client, api_key=CANARY_KEY + "-stale")
        with pytest.raises(PermanentError) as caught:
            await run(wrong, make_request())
        errors.append(caught.value)
        assert CANARY_KEY not in repr(provider) and CANARY_KEY not in repr(wrong)

    assert len(errors) == len(faults) + 1
    for error in errors:
        for text in (str(error), repr(error), getattr(error, "message", "")):
            assert CANARY_KEY not in text
    for record in caplog.records:
        assert CANARY_KEY not in record.getMessage()
    assert CANARY_KEY not in caplog.text


# ---- the fake refuses what the real API refuses ----


async def test_the_fake_rejects_response_format_for_gpt_image_1(fake: FakeOpenAI) -> None:
    async with client_for(fake.app, BASE_URL) as client:
        response = await client.post(
            "/v1/images/generations",
            headers={"Authorization": f"Bearer {CANARY_KEY}"},
            json={"model": "gpt-image-1", "prompt": "x", "response_format": "b64_json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_parameter"


async def test_the_fake_refuses_the_retired_dall_e_models(fake: FakeOpenAI) -> None:
    async with client_for(fake.app, BASE_URL) as client:
        response = await client.post(
            "/v1/images/generations",
            headers={"Authorization": f"Bearer {CANARY_KEY}"},
            json={"model": "dall-e-3", "prompt": "x"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "model"


async def test_the_fake_demands_a_bearer_key(fake: FakeOpenAI) -> None:
    async with client_for(fake.app, BASE_URL) as client:
        response = await client.post("/v1/images/generations", json={"prompt": "x"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "didn't provide an API key" in error["message"]


class TestOpenAIConformance(ProviderConformance):
    """The shared provider contract, against the fake service."""

    @pytest.fixture
    async def provider(self, fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
        async with client_for(fake.app, BASE_URL) as client:
            adapter = openai_provider(fake, client, timeout=2.0)
            yield adapter
            await adapter.aclose()
