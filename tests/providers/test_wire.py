"""The plumbing every adapter shares: HTTP status classes, image bodies, the in-adapter request check."""

from __future__ import annotations

import base64

import httpx
import pytest
from PIL import Image

from imagestudio.providers.base import (
    GenerationRequest,
    GenerationType,
    PermanentError,
    RetriableError,
)
from imagestudio.providers.builtin import BuiltinRenderer
from imagestudio.providers.selfhosted import raise_for_status
from imagestudio.providers.wire import (
    decode_base64_image,
    decode_image,
    encode_png,
    ensure_servable,
    error_for_status,
    png_part,
    retry_after_seconds,
)


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (429, RetriableError, "provider_rate_limited"),
        (408, RetriableError, "provider_unavailable"),
        (409, RetriableError, "provider_unavailable"),
        (425, RetriableError, "provider_unavailable"),
        (500, RetriableError, "provider_unavailable"),
        (503, RetriableError, "provider_unavailable"),
        (529, RetriableError, "provider_unavailable"),
        (501, PermanentError, "provider_failed"),
        (505, PermanentError, "provider_failed"),
        (401, PermanentError, "provider_auth_failed"),
        (403, PermanentError, "provider_auth_failed"),
        (400, PermanentError, "provider_failed"),
        (404, PermanentError, "provider_failed"),
        (422, PermanentError, "provider_failed"),
    ],
)
def test_a_status_means_the_same_error_for_every_adapter(status: int, kind: type, code: str) -> None:
    error = error_for_status(status, "the words", retry_after=4.0)
    assert type(error) is kind
    assert error.code == code
    assert error.message == "the words"
    if isinstance(error, RetriableError):
        assert error.retry_after == 4.0


def test_self_hosted_servers_classify_statuses_like_hosted_services() -> None:
    busy = httpx.Response(429, headers={"retry-after-ms": "2500"}, json={"detail": "queue full"})
    with pytest.raises(RetriableError) as caught:
        raise_for_status(busy, "Server", "generate")
    assert caught.value.code == "provider_rate_limited"
    assert caught.value.retry_after == 2.5
    assert "queue full" in caught.value.message

    missing_route = httpx.Response(501, text="Not Implemented")
    with pytest.raises(PermanentError) as refused:
        raise_for_status(missing_route, "Server", "generate")
    assert "HTTP 501" in refused.value.message

    raise_for_status(httpx.Response(200, json={}), "Server", "generate")  # success passes quietly


def test_retry_after_milliseconds_must_be_a_sane_number() -> None:
    for nonsense in ("-1", "nan", "later"):
        headers = httpx.Headers({"retry-after-ms": nonsense, "retry-after": "3"})
        assert retry_after_seconds(headers) == 3.0


def test_decoding_failures_name_the_source_but_quote_no_library_text(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow's own messages name its internal limits; users see ours only.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)
    bomb = encode_png(Image.new("RGB", (20, 20)))
    for data in (bomb, b"<html>busy</html>"):
        with pytest.raises(PermanentError) as caught:
            decode_image(data, source="Server")
        assert caught.value.message == "Server returned bytes that are not a readable image"
        assert caught.value.code == "provider_bad_response"


def test_base64_images_decode_with_or_without_a_data_url_prefix() -> None:
    encoded = base64.b64encode(encode_png(Image.new("RGB", (3, 2), (9, 8, 7)))).decode()
    for text in (encoded, f"data:image/png;base64,{encoded}"):
        image = decode_base64_image(text, source="Server")
        assert image.size == (3, 2)
        assert image.getpixel((1, 1)) == (9, 8, 7)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "not a base64 string"),
        ("", "not a base64 string"),
        (42, "not a base64 string"),
        ("not base64 at all!", "invalid base64"),
        (base64.b64encode(b"plain text").decode(), "not a readable image"),
    ],
)
def test_base64_images_refuse_what_is_not_one(data: object, problem: str) -> None:
    with pytest.raises(PermanentError) as caught:
        decode_base64_image(data, source="Server")
    assert problem in caught.value.message
    assert caught.value.code == "provider_bad_response"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("RGB", "RGB"), ("RGBA", "RGBA"), ("L", "L"), ("CMYK", "RGB"), ("LA", "RGBA"), ("P", "RGB"), ("I;16", "RGB")],
)
def test_png_encoding_turns_modes_png_cannot_hold_into_rgb_or_rgba(mode: str, expected: str) -> None:
    decoded = decode_image(encode_png(Image.new(mode, (4, 4))), source="test")
    assert decoded.mode == expected


def test_png_encoding_converts_to_an_asked_mode_and_multipart_parts_carry_png() -> None:
    mask = decode_image(encode_png(Image.new("RGB", (4, 4), (255, 255, 255)), mode="L"), source="test")
    assert mask.mode == "L" and mask.getpixel((0, 0)) == 255
    name, (filename, data, content_type) = png_part("mask", Image.new("L", (2, 2)))
    assert (name, filename, content_type) == ("mask", "mask.png", "image/png")
    assert decode_image(data, source="test").size == (2, 2)


def test_the_in_adapter_check_refuses_with_the_adapters_code_and_the_limit() -> None:
    caps = BuiltinRenderer().capabilities()
    too_wide = GenerationRequest(
        type=GenerationType.text2img, prompt="x", model="", width=caps.max_size + caps.size_multiple, height=512
    )
    with pytest.raises(PermanentError) as caught:
        ensure_servable(caps, too_wide, code="unsupported_request")
    assert caught.value.code == "unsupported_request"
    assert str(caps.max_size) in caught.value.message

    no_source = GenerationRequest(type=GenerationType.img2img, prompt="x", model="", width=512, height=512)
    with pytest.raises(PermanentError, match="needs a source image"):
        ensure_servable(caps, no_source)

    ensure_servable(caps, GenerationRequest(type=GenerationType.text2img, prompt="x", model="", width=512, height=512))
