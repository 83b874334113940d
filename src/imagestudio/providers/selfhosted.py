"""Plumbing shared by the adapters for servers people run themselves (AUTOMATIC1111, ComfyUI).

Both speak JSON over plain HTTP, fail in the same ways (server down, busy GPU, bad request) and
carry images as PNG bytes, so the mapping from HTTP trouble to the typed provider errors lives here
once. Nothing in this module ever formats a credential: messages name the server by its URL with
any user:password part removed.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.utils
import io
import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import httpx
from PIL import Image, UnidentifiedImageError

from imagestudio.providers.base import (
    NotConfiguredError,
    PermanentError,
    RetriableError,
)

# Statuses a busy or restarting server answers with; worth trying again later.
RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Longest server-supplied detail quoted in an error message.
MAX_DETAIL_CHARS = 300


def normalise_base_url(base_url: str | None) -> str | None:
    """Strip whitespace and trailing slashes; an empty string means "not configured"."""
    if base_url is None:
        return None
    cleaned = base_url.strip().rstrip("/")
    return cleaned or None


def display_url(url: str) -> str:
    """The URL without any user:password@ part, safe for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Parse Retry-After, given either as seconds or as an HTTP date."""
    raw = response.headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_DETAIL_CHARS:
        return text[: MAX_DETAIL_CHARS - 1] + "…"
    return text


def response_detail(response: httpx.Response) -> str:
    """A one-line summary of an error body: the server's own words when it gave any."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return _short(response.text) if response.content else ""
    if isinstance(body, dict):
        # AUTOMATIC1111 answers {"error": type, "detail", "errors"} (or FastAPI's {"detail": [...]});
        # ComfyUI answers {"error": {"message", "details"}, "node_errors"}.
        for key in ("detail", "errors", "error", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                message = value.get("message") or value.get("type") or ""
                details = value.get("details") or ""
                text = f"{message}: {details}" if message and details else str(message or details)
                if text:
                    return _short(text)
            elif isinstance(value, list) and value:
                return _short(
                    "; ".join(
                        str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in value
                    )
                )
            elif isinstance(value, str) and value:
                return _short(value)
    return _short(json.dumps(body))


def raise_for_status(response: httpx.Response, service: str, action: str) -> None:
    """Raise the typed error matching a non-2xx answer; return quietly on success."""
    if response.is_success:
        return
    status = response.status_code
    detail = response_detail(response)
    suffix = f": {detail}" if detail else ""
    if status in RETRIABLE_STATUSES:
        raise RetriableError(
            f"{service} could not {action} right now (HTTP {status}){suffix}",
            retry_after=retry_after_seconds(response),
        )
    if status in (401, 403):
        raise PermanentError(
            f"{service} refused the credentials while trying to {action} (HTTP {status})",
            code="provider_auth_failed",
        )
    raise PermanentError(f"{service} rejected the request to {action} (HTTP {status}){suffix}")


@contextlib.contextmanager
def transport_errors(service: str, base_url: str, action: str) -> Iterator[None]:
    """Turn httpx's network failures into typed errors that name the server but no secret."""
    where = display_url(base_url)
    try:
        yield
    except httpx.TimeoutException as exc:
        raise RetriableError(f"{service} at {where} timed out while trying to {action}") from exc
    except httpx.UnsupportedProtocol as exc:
        raise NotConfiguredError(f"{service} URL {where} is not an http:// or https:// address") from exc
    except httpx.InvalidURL as exc:
        raise NotConfiguredError(f"{service} URL {where} is not a valid address") from exc
    except httpx.TransportError as exc:
        raise RetriableError(
            f"{service} at {where} could not be reached while trying to {action} ({type(exc).__name__})"
        ) from exc


def json_body(response: httpx.Response, service: str, action: str) -> object:
    """Decode a successful answer's JSON, treating anything else as a broken server."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise PermanentError(
            f"{service} sent a malformed (non-JSON) answer to {action}", code="provider_bad_response"
        ) from exc


def malformed(service: str, what: str) -> PermanentError:
    return PermanentError(f"{service} sent a malformed answer: {what}", code="provider_bad_response")


def png_bytes(image: Image.Image, *, mode: str | None = None) -> bytes:
    """Encode an image as PNG, optionally converting its mode first (e.g. "L" for masks)."""
    if mode is not None and image.mode != mode:
        image = image.convert(mode)
    elif image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_base64(image: Image.Image, *, mode: str | None = None) -> str:
    return base64.b64encode(png_bytes(image, mode=mode)).decode("ascii")


def decode_image_bytes(data: bytes, service: str) -> Image.Image:
    """Open image bytes fully (so later use cannot fail), refusing anything Pillow cannot read."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise malformed(service, "an image could not be decoded") from exc
    return image


def decode_image_base64(data: object, service: str) -> Image.Image:
    """Decode a base64 image as AUTOMATIC1111 sends it (a data: URL prefix is tolerated)."""
    if not isinstance(data, str) or not data:
        raise malformed(service, "an image was not a base64 string")
    if data.startswith("data:"):
        _, _, data = data.partition(",")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise malformed(service, "an image was not valid base64") from exc
    return decode_image_bytes(raw, service)


def fit_to(image: Image.Image, width: int, height: int, *, resample: Image.Resampling) -> Image.Image:
    """Resize to the requested output size when it differs (the engine resolved the size already)."""
    if image.size == (width, height):
        return image
    return image.resize((width, height), resample=resample)
