"""What every adapter does the same way: request checks, HTTP failures, retry hints, bodies, images.

Hosted adapters (`hosted.py`) and adapters for servers people run themselves (`selfhosted.py`) build
on these, so a status code, a Retry-After header or a broken image means the same thing everywhere.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

from PIL import Image, UnidentifiedImageError

from imagestudio.kit.answers import json_or_none, parse_duration, retry_after_seconds  # noqa: F401  (re-exported)
from imagestudio.providers.base import (
    GenerationRequest,
    PermanentError,
    ProviderCapabilities,
    ProviderError,
    RetriableError,
    UnsupportedRequest,
    check_request,
)

# Stable error codes the adapters attach so the UI can say something precise.
AUTH_FAILED = "provider_auth_failed"
QUOTA_EXCEEDED = "provider_quota_exceeded"
RATE_LIMITED = "provider_rate_limited"
TIMED_OUT = "provider_timeout"
BAD_RESPONSE = "provider_bad_response"
UNSUPPORTED = "unsupported_request"

# Statuses that say "not now" rather than "never": timeouts, conflicts, throttling, a busy server.
# 501 and 505 are server errors too, but they will answer the same way next time.
_RETRIABLE_CLIENT_STATUSES = frozenset({408, 409, 425, 429})
_PERMANENT_SERVER_STATUSES = frozenset({501, 505})


# ---- requests ----


def ensure_servable(caps: ProviderCapabilities, request: GenerationRequest, *, code: str | None = None) -> None:
    """Re-run the pre-queue check inside the adapter, as a typed error instead of a refused call.

    check_request normally ran before queueing; a request that slipped past it must fail here rather
    than cost a paid call or a model load the backend would refuse.
    """
    try:
        check_generation(caps, request, model=request.model or caps.default_model)
    except UnsupportedRequest as exc:
        raise PermanentError(exc.message, code=code) from None


def check_generation(
    caps: ProviderCapabilities, request: GenerationRequest, *, model: str | None, details: bool = True
) -> None:
    """`check_request` for a request as an adapter gets it. Without `details`, only what decides whether
    the provider can take it at all (type, model, count, size, inputs, upscale factor); guidance,
    scheduler, extra options and the source's size are left to the provider's own defaults."""
    source = request.init_image
    check_request(
        caps,
        type=request.type,
        model=model,
        num_images=request.num_images,
        width=request.width,
        height=request.height,
        has_init=source is not None,
        has_mask=request.mask_image is not None,
        upscale_factor=request.upscale_factor,
        guidance=request.guidance if details else None,
        scheduler=request.scheduler if details else None,
        extra=request.extra if details else None,
        source_size=source.size if details and source is not None else None,
    )


# ---- HTTP failures ----


def is_retriable_status(status: int) -> bool:
    return status in _RETRIABLE_CLIENT_STATUSES or (status >= 500 and status not in _PERMANENT_SERVER_STATUSES)


def error_for_status(status: int, message: str, *, retry_after: float | None = None) -> ProviderError:
    """The typed error for a failed HTTP answer the adapter found nothing more specific in."""
    if status == 429:
        return RetriableError(message, retry_after=retry_after, code=RATE_LIMITED)
    if is_retriable_status(status):
        return RetriableError(message, retry_after=retry_after)
    if status in (401, 403):
        return PermanentError(message, code=AUTH_FAILED)
    return PermanentError(message)


# ---- images ----


def encode_png(image: Image.Image, *, mode: str | None = None) -> bytes:
    """PNG bytes, converting to `mode` first when given (e.g. "L" for masks).

    Without a mode, images PNG cannot hold as they are (CMYK, palette with odd transparency...)
    become RGB or RGBA.
    """
    if mode is not None and image.mode != mode:
        image = image.convert(mode)
    elif mode is None and image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_image(data: bytes, *, source: str) -> Image.Image:
    """Decode image bytes fully (so later use cannot fail); garbage becomes a PermanentError."""
    if not data:
        raise PermanentError(f"{source} returned an empty image", code=BAD_RESPONSE)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise PermanentError(f"{source} returned bytes that are not a readable image", code=BAD_RESPONSE) from None
    return image


def decode_base64_image(data: object, *, source: str) -> Image.Image:
    """Decode a base64 image as JSON APIs send it (a data: URL prefix is tolerated)."""
    if not isinstance(data, str) or not data:
        raise PermanentError(f"{source} returned an image that is not a base64 string", code=BAD_RESPONSE)
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise PermanentError(f"{source} returned invalid base64 image data", code=BAD_RESPONSE) from None
    return decode_image(raw, source=source)


def png_base64(image: Image.Image, *, mode: str | None = None) -> str:
    return base64.b64encode(encode_png(image, mode=mode)).decode("ascii")


# ---- multipart bodies ----

# (field name, (filename or None, content[, content type])) as httpx takes them for multipart.
FormPart = tuple[str, tuple[Any, ...]]


def form_field(name: str, value: object) -> FormPart:
    return (name, (None, str(value)))


def png_part(name: str, image: Image.Image, *, filename: str | None = None) -> FormPart:
    return (name, (filename or f"{name}.png", encode_png(image), "image/png"))
