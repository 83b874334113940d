"""GeminiProvider against a fake Gemini API that speaks the real wire format."""

from __future__ import annotations

import base64
import io
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
from imagestudio.providers.gemini import GeminiProvider
from tests.fakes.common import Fault, ProgressLog, cancel_midway, client_for, colour_for, pixel_colour
from tests.fakes.gemini import BASE_URL, FakeGemini, gemini_provider
from tests.providers.conformance import ProviderConformance

pytestmark = pytest.mark.anyio

CANARY_KEY = "AIzaSyCanary0123456789abcdefGHIJKLmnop"
PROMPT = "a paper boat on a pond"
ORANGE = (230, 120, 20)


@pytest.fixture
def fake() -> FakeGemini:
    return FakeGemini(api_key=CANARY_KEY)


@pytest.fixture
async def provider(fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
    """A configured provider bound to the fake (the shape a conformance suite can reuse)."""
    async with client_for(fake.app, BASE_URL) as client:
        yield gemini_provider(fake, client, timeout=2.0)


def make_request(**overrides) -> GenerationRequest:
    fields = {
        "type": GenerationType.text2img,
        "prompt": PROMPT,
        "model": "gemini-3.1-flash-image",
        "width": 1024,
        "height": 1024,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)


async def run(provider: GeminiProvider, request: GenerationRequest, cancel: CancellationToken | None = None):
    progress = ProgressLog()
    result = await provider.generate(request, progress, cancel or CancellationToken())
    return result, progress


def decode_inline(part: dict) -> Image.Image:
    blob = part["inline_data"]
    assert blob["mime_type"] == "image/png"
    image = Image.open(io.BytesIO(base64.b64decode(blob["data"])))
    image.load()
    return image


# ---- shape and capabilities ----


def test_provider_satisfies_the_protocol(fake: FakeGemini) -> None:
    provider = gemini_provider(fake)
    assert isinstance(provider, Provider)
    caps = provider.capabilities()
    assert caps.default_model == "gemini-3.1-flash-image"
    # Before the service is asked: today's models, without the retired ids.
    assert [m.id for m in caps.models] == ["gemini-3.1-flash-image", "gemini-3-pro-image"]
    assert not (caps.honours_seed or caps.honours_negative_prompt or caps.honours_strength or caps.supports_mask)
    assert caps.types == {GenerationType.text2img, GenerationType.img2img}


@pytest.mark.parametrize(
    ("model", "kind", "num_images", "width", "field"),
    [
        ("gemini-3.1-flash-image", GenerationType.inpaint, 1, 1024, "type"),
        ("gemini-3.1-flash-image", GenerationType.upscale, 1, 1024, "type"),
        ("gemini-3.1-flash-image", GenerationType.text2img, 11, 1024, "num_images"),
        ("gemini-3.1-flash-image", GenerationType.text2img, 1, 8192, "width"),
        ("imagen-3", GenerationType.text2img, 1, 1024, "model"),
    ],
)
def test_check_request_refuses_what_the_models_cannot_do(fake: FakeGemini, model, kind, num_images, width, field):
    with pytest.raises(UnsupportedRequest) as caught:
        check_request(
            gemini_provider(fake).capabilities(),
            type=kind,
            model=model,
            num_images=num_images,
            width=width,
            height=1024,
            has_init=True,
            has_mask=True,
        )
    assert caught.value.field == field


# ---- successes ----


async def test_text2img_batch_makes_one_call_per_image(provider: GeminiProvider, fake: FakeGemini) -> None:
    result, progress = await run(provider, make_request(num_images=2, width=1600, height=900))

    assert len(fake.requests) == 2
    for seen in fake.requests:
        assert (seen.method, seen.path) == ("POST", "/v1beta/models/gemini-3.1-flash-image:generateContent")
        assert seen.headers["x-goog-api-key"] == CANARY_KEY
        assert "key" not in seen.query  # never in the URL, where it would reach access logs
        assert seen.json == {
            "contents": [{"role": "user", "parts": [{"text": PROMPT}]}],
            "generationConfig": {
                "responseModalities": ["TEXT", "IMAGE"],
                "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
            },
        }
    assert [g.image.size for g in result.images] == [(1344, 768)] * 2
    assert pixel_colour(result.images[0].image, 3, 3) == colour_for(PROMPT)
    assert progress.calls == [(0, 2), (1, 2), (2, 2)]
    # Token counts are summed over the calls.
    assert result.usage["candidatesTokenCount"] == 2 * 1290
    assert result.usage["totalTokenCount"] == 2 * (1290 + len(PROMPT.split()))
    # Two calls' 2 x 1290 output tokens at $60/M (input tokens are not priced).
    assert result.cost == Decimal("0.154800") and result.model == "gemini-3.1-flash-image"


async def test_img2img_sends_the_source_then_the_references_inline(provider: GeminiProvider, fake: FakeGemini):
    source = Image.new("RGB", (300, 200), ORANGE)
    reference = Image.new("RGB", (32, 32), (0, 0, 255))
    result, _ = await run(
        provider, make_request(type=GenerationType.img2img, init_image=source, reference_images=[reference])
    )
    body = fake.last.json
    text, first, second = body["contents"][0]["parts"]
    assert text == {"text": PROMPT}
    assert decode_inline(first).size == (300, 200)
    assert pixel_colour(decode_inline(first), 0, 0) == ORANGE
    assert decode_inline(second).size == (32, 32)
    # An edit keeps the source's shape unless a ratio is asked for.
    assert "imageConfig" not in body["generationConfig"]
    assert result.images[0].image.size == (300, 200)


async def test_an_explicit_ratio_is_sent_for_an_edit(provider: GeminiProvider, fake: FakeGemini) -> None:
    source = Image.new("RGB", (300, 200), ORANGE)
    result, _ = await run(provider, make_request(type=GenerationType.img2img, init_image=source, aspect_ratio="21:9"))
    assert fake.last.json["generationConfig"]["imageConfig"] == {"aspectRatio": "21:9", "imageSize": "1K"}
    assert result.images[0].image.size == (1536, 672)


async def test_the_pro_model_asks_for_an_image_size(provider: GeminiProvider, fake: FakeGemini) -> None:
    await run(provider, make_request(model="gemini-3-pro-image", width=2048, height=2048))
    assert fake.last.path == "/v1beta/models/gemini-3-pro-image:generateContent"
    assert fake.last.json["generationConfig"]["imageConfig"] == {"aspectRatio": "1:1", "imageSize": "2K"}


async def test_gemini_3_1_flash_image_also_asks_for_an_image_size(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    result, _ = await run(provider, make_request(model="gemini-3.1-flash-image", width=1024, height=1024))
    assert fake.last.json["generationConfig"]["imageConfig"] == {"aspectRatio": "1:1", "imageSize": "1K"}
    assert result.model == "gemini-3.1-flash-image"


async def test_interim_thought_images_are_skipped_and_the_final_one_kept(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.thought_images = 2
    result, _ = await run(provider, make_request())
    assert len(result.images) == 1
    assert pixel_colour(result.images[0].image, 4, 4) == colour_for(PROMPT)


# ---- failures ----


async def test_a_wrong_key_is_a_permanent_auth_failure(fake: FakeGemini) -> None:
    wrong_key = "AIzaSyWrongKeyThatTheServiceEchoes"
    async with client_for(fake.app, BASE_URL) as client:
        provider = gemini_provider(fake, client, api_key=wrong_key)
        with pytest.raises(PermanentError) as caught:
            await run(provider, make_request())
    assert caught.value.code == "provider_auth_failed"
    assert "API key not valid" in caught.value.message
    assert wrong_key not in str(caught.value)


async def test_rate_limit_uses_the_retry_info_delay(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.fail_next(Fault.rate_limit(retry_after=17))
    with pytest.raises(RetriableError) as caught:
        await run(provider, make_request())
    assert caught.value.retry_after == 17
    assert caught.value.code == "provider_rate_limited"
    assert "RESOURCE_EXHAUSTED" in caught.value.message


async def test_an_exhausted_daily_quota_is_not_retried_like_a_rate_limit(
    provider: GeminiProvider, fake: FakeGemini
) -> None:
    fake.fail_next(Fault("daily_quota", status=429, retry_after=17))
    with pytest.raises(PermanentError) as caught:
        await run(provider, make_request())
    assert caught.value.code == "provider_quota_exceeded"
    assert "daily quota" in caught.value.message


async def test_a_retry_after_header_beats_the_body(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.fail_next(Fault.rate_limit(retry_after=4, header=True))
    with pytest.raises(RetriableError) as caught:
        await run(provider, make_request())
    assert caught.value.retry_after == 4


@pytest.mark.parametrize(("status", "grpc_status"), [(500, "INTERNAL"), (503, "UNAVAILABLE")])
async def test_server_errors_are_retriable(provider: GeminiProvider, fake: FakeGemini, status, grpc_status) -> None:
    fake.fail_next(Fault.server_error(status))
    with pytest.raises(RetriableError) as caught:
        await run(provider, make_request())
    assert grpc_status in caught.value.message


@pytest.mark.parametrize(
    "options",
    [
        {"where": "prompt", "reason": "PROHIBITED_CONTENT"},
        {"where": "prompt", "reason": "SAFETY"},
        {"where": "image", "reason": "IMAGE_SAFETY"},
        {"where": "image", "reason": "PROHIBITED_CONTENT"},
    ],
)
async def test_safety_blocks_are_content_rejections(provider: GeminiProvider, fake: FakeGemini, options) -> None:
    fake.fail_next(Fault.content_rejection(**options))
    with pytest.raises(ContentRejectedError) as caught:
        await run(provider, make_request())
    assert options["reason"] in caught.value.message


@pytest.mark.parametrize("shape", ["truncated", "no_image", "bad_base64"])
async def test_malformed_answers_are_permanent(provider: GeminiProvider, fake: FakeGemini, shape) -> None:
    fake.fail_next(Fault.malformed(shape=shape))
    with pytest.raises(PermanentError) as caught:
        await run(provider, make_request())
    assert caught.value.code == "provider_bad_response"


async def test_a_text_only_answer_says_what_the_model_said(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.fail_next(Fault.malformed(shape="no_image"))
    with pytest.raises(PermanentError, match="here is no picture"):
        await run(provider, make_request())


async def test_a_slow_answer_times_out_as_retriable(fake: FakeGemini) -> None:
    fake.fail_next(Fault.slow(30))
    async with client_for(fake.app, BASE_URL) as client:
        provider = gemini_provider(fake, client, timeout=0.2)
        started = time.monotonic()
        with pytest.raises(RetriableError) as caught:
            await run(provider, make_request())
    assert time.monotonic() - started < 15, "the slow answer (30 s) was waited for"
    assert caught.value.code == "provider_timeout"


async def test_cancel_during_a_slow_request(provider: GeminiProvider, fake: FakeGemini) -> None:
    fake.fail_next(Fault.slow(0), Fault.slow(30))
    cancel = CancellationToken()
    started = time.monotonic()
    outcome = await cancel_midway(lambda: run(provider, make_request(num_images=3), cancel), cancel, after=0.3)
    assert isinstance(outcome, GenerationCanceled)
    assert time.monotonic() - started < 15, "the slow answer (30 s) was waited for"
    assert len(fake.requests) == 2 and fake.completed == 1


async def test_a_token_set_before_the_call_sends_nothing(provider: GeminiProvider, fake: FakeGemini) -> None:
    cancel = CancellationToken()
    cancel.cancel()
    with pytest.raises(GenerationCanceled):
        await run(provider, make_request(), cancel)
    assert fake.requests == []


async def test_a_missing_key_is_not_configured(fake: FakeGemini) -> None:
    async with client_for(fake.app, BASE_URL) as client:
        provider = GeminiProvider(None, client=client)
        assert provider.configuration_problem() == "Gemini API key not set (IMAGESTUDIO_GEMINI_API_KEY)"
        with pytest.raises(NotConfiguredError):
            await run(provider, make_request())
    assert fake.requests == []


async def test_the_key_never_leaks_into_errors_logs_or_repr(fake: FakeGemini, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    faults = [
        Fault.rate_limit(),
        Fault.server_error(503),
        Fault.content_rejection(where="prompt"),
        Fault.content_rejection(),
        Fault.malformed(),
        Fault.malformed(shape="no_image"),
        Fault.slow(30),
    ]
    errors: list[BaseException] = []
    async with client_for(fake.app, BASE_URL) as client:
        provider = gemini_provider(fake, client, timeout=0.2)
        for fault in faults:
            fake.fail_next(fault)
            with pytest.raises(ProviderError) as caught:
                await run(provider, make_request())
            errors.append(caught.value)
        # The real service echoes a wrong key in a DebugInfo detail; it must not travel further.
        wrong = gemini_provider(fake, client, api_key=CANARY_KEY + "X")
        with pytest.raises(PermanentError) as caught:
            await run(wrong, make_request())
        errors.append(caught.value)
        assert CANARY_KEY not in repr(provider) and CANARY_KEY not in repr(wrong)
    for error in errors:
        assert CANARY_KEY not in str(error) and CANARY_KEY not in repr(error)
    assert all(CANARY_KEY not in record.getMessage() for record in caplog.records)
    assert CANARY_KEY not in caplog.text


# ---- the fake refuses what the real API refuses ----


async def test_the_fake_parses_like_protobuf_json(fake: FakeGemini) -> None:
    headers = {"x-goog-api-key": CANARY_KEY}
    url = "/v1beta/models/gemini-3.1-flash-image:generateContent"
    async with client_for(fake.app, BASE_URL) as client:
        unknown = await client.post(url, headers=headers, json={"contents": [{"parts": [{"txt": "x"}]}]})
        snake = await client.post(
            url,
            headers=headers,
            json={
                "contents": [{"parts": [{"text": "x"}]}],
                "generation_config": {
                    "response_modalities": ["IMAGE"],
                    "image_config": {"aspect_ratio": "4:3"},
                },
            },
        )
        bad_ratio = await client.post(
            url,
            headers=headers,
            json={
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "7:5"}},
            },
        )
        no_key = await client.post(url, json={"contents": [{"parts": [{"text": "x"}]}]})
        retired = await client.post(
            "/v1beta/models/gemini-1.0-pro-vision:generateContent",
            headers=headers,
            json={"contents": [{"parts": [{"text": "x"}]}]},
        )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "txt"' in unknown.json()["error"]["message"]
    assert snake.status_code == 200
    assert snake.json()["candidates"][0]["content"]["parts"][0]["inlineData"]["mimeType"] == "image/png"
    assert bad_ratio.status_code == 400
    assert no_key.status_code == 403 and no_key.json()["error"]["status"] == "PERMISSION_DENIED"
    assert retired.status_code == 404 and retired.json()["error"]["status"] == "NOT_FOUND"


class TestGeminiConformance(ProviderConformance):
    """The shared provider contract, against the fake service."""

    exact_size = False

    @pytest.fixture
    async def provider(self, fake: FakeGemini) -> AsyncIterator[GeminiProvider]:
        async with client_for(fake.app, BASE_URL) as client:
            adapter = gemini_provider(fake, client, timeout=2.0)
            yield adapter
            await adapter.aclose()
