"""The plumbing shared by the hosted adapters: retry hints, redaction, ratios, transport failures."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest
from PIL import Image

from imagestudio.providers.base import (
    CancellationToken,
    GenerationRequest,
    GenerationType,
    PermanentError,
    RetriableError,
)
from imagestudio.providers.gemini import GeminiProvider
from imagestudio.providers.hosted import nearest_aspect_ratio, redact
from imagestudio.providers.openai import OpenAIProvider
from imagestudio.providers.stability import StabilityProvider
from imagestudio.providers.wire import decode_image, encode_png, parse_duration, retry_after_seconds

SECRET = "sk-echoed-secret-5f1e2d3c4b5a69788796a5b4"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("53s", 53.0), ("1.5s", 1.5), ("20ms", 0.02), ("6m0s", 360.0), ("1h2m3s", 3723.0), ("0s", 0.0)],
)
def test_parse_duration_reads_go_and_protobuf_styles(text, seconds) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "5", "5 s", "-3s", "3sx"])
def test_parse_duration_refuses_anything_else(text) -> None:
    assert parse_duration(text) is None


def test_retry_after_prefers_milliseconds_then_seconds() -> None:
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "1500", "retry-after": "9"})) == 1.5
    assert retry_after_seconds(httpx.Headers({"retry-after": "9"})) == 9.0
    assert retry_after_seconds(httpx.Headers({"retry-after": "0.25"})) == 0.25
    assert retry_after_seconds(httpx.Headers({})) is None


def test_retry_after_accepts_an_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(httpx.Headers({"retry-after": later}), now=now.timestamp()) == 30.0
    earlier = format_datetime(datetime(2025, 1, 1, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(httpx.Headers({"retry-after": earlier}), now=now.timestamp()) == 0.0


@pytest.mark.parametrize("value", ["tomorrow", "-5", "nan", "inf"])
def test_retry_after_ignores_nonsense(value) -> None:
    assert retry_after_seconds(httpx.Headers({"retry-after": value})) is None


def test_redact_removes_every_copy_and_tolerates_no_secret() -> None:
    assert redact(f"bad key {SECRET} (again: {SECRET})", SECRET) == "bad key [redacted] (again: [redacted])"
    assert redact("nothing to hide", None) == "nothing to hide"


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [
        (1024, 1024, "1:1"),
        (1920, 1080, "16:9"),
        (1080, 1920, "9:16"),
        (1000, 800, "5:4"),
        (3000, 1000, "21:9"),
        (600, 900, "2:3"),
    ],
)
def test_nearest_aspect_ratio(width, height, ratio) -> None:
    allowed = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
    assert nearest_aspect_ratio(width, height, allowed) == ratio


def test_decode_image_round_trips_and_refuses_garbage() -> None:
    image = Image.new("RGBA", (7, 5), (1, 2, 3, 4))
    assert decode_image(encode_png(image), source="test").getpixel((3, 3)) == (1, 2, 3, 4)
    for junk in (b"", b"\x89PNG\r\n\x1a\n truncated", b"<html>"):
        with pytest.raises(PermanentError) as caught:
            decode_image(junk, source="test")
        assert caught.value.code == "provider_bad_response"


# ---- every adapter, through a transport that misbehaves ----

ADAPTERS = [OpenAIProvider, StabilityProvider, GeminiProvider]


def _request() -> GenerationRequest:
    return GenerationRequest(type=GenerationType.text2img, prompt="x", model="", width=1024, height=1024)


@pytest.mark.anyio
@pytest.mark.parametrize("adapter", ADAPTERS)
async def test_a_service_echoing_the_key_verbatim_is_redacted(adapter) -> None:
    """Some gateways echo the whole key in a 401; the adapters must scrub it from their errors."""

    def echo(request: httpx.Request) -> httpx.Response:
        message = f"Invalid API key: {SECRET}"
        body = {
            "error": {"message": message, "code": 401, "status": "UNAUTHENTICATED"},
            "name": "unauthorized",
            "errors": [message],
        }
        return httpx.Response(401, content=json.dumps(body), headers={"content-type": "application/json"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(echo)) as client:
        provider = adapter(SECRET, client=client)
        with pytest.raises(PermanentError) as caught:
            await provider.generate(_request(), lambda step, total: None, CancellationToken())
    assert caught.value.code == "provider_auth_failed"
    assert "[redacted]" in caught.value.message
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)


@pytest.mark.anyio
@pytest.mark.parametrize("adapter", ADAPTERS)
@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (httpx.ConnectError("refused"), RetriableError),
        (httpx.ReadError("reset by peer"), RetriableError),
        (httpx.RemoteProtocolError("server hung up"), RetriableError),
        (httpx.ReadTimeout("read timed out"), RetriableError),
        (httpx.UnsupportedProtocol("no such scheme"), PermanentError),
    ],
)
async def test_transport_failures_map_to_typed_errors(adapter, failure, expected) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        failure.request = request
        raise failure

    async with httpx.AsyncClient(transport=httpx.MockTransport(fail)) as client:
        provider = adapter("k-123", client=client)
        with pytest.raises(expected) as caught:
            await provider.generate(_request(), lambda step, total: None, CancellationToken())
    assert type(caught.value) is expected


@pytest.mark.anyio
async def test_unexpected_exceptions_surface_unwrapped() -> None:
    """A bug below the adapter must not come out as an ExceptionGroup from the cancel watcher."""

    def explode(request: httpx.Request) -> httpx.Response:
        raise LookupError("boom")

    async with httpx.AsyncClient(transport=httpx.MockTransport(explode)) as client:
        provider = OpenAIProvider("k-123", client=client)
        with pytest.raises(LookupError, match="boom"):
            await provider.generate(_request(), lambda step, total: None, CancellationToken())


@pytest.mark.anyio
async def test_aclose_leaves_the_injected_client_open() -> None:
    async with httpx.AsyncClient() as client:
        provider = GeminiProvider("k", client=client)
        await provider.aclose()
        assert not client.is_closed
