"""What HTTP services say between the lines: retry hints, error bodies, and keys they echo back.

Shared by the image providers and the language models, which talk to the same kinds of services.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

REDACTED = "[redacted]"


# ---- secrets ----


def redact(text: str, secret: str | None) -> str:
    """Remove every occurrence of the secret from text (services sometimes echo the key back)."""
    if not secret:
        return text
    return text.replace(secret, REDACTED)


# ---- retry hints ----

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_DURATION_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: str | None) -> float | None:
    """Seconds from "53s", "1.5s", "20ms", "6m0s" or "1h2m3s" (Go and protobuf duration styles)."""
    if not value:
        return None
    text = value.strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _DURATION_SCALE[unit] for number, unit in parts)


def _seconds(text: str) -> float | None:
    """A finite, non-negative number of seconds, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _http_date_delay(text: str, now: float | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The server's wait hint: retry-after-ms, then Retry-After (seconds or an HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis and (value := _seconds(millis)) is not None:
        return value / 1000
    raw = (headers.get("retry-after") or "").strip()
    if not raw:
        return None
    try:
        float(raw)
    except ValueError:
        return _http_date_delay(raw, now)
    return _seconds(raw)


def google_retry_hint(headers: Mapping[str, str], details: list[Any]) -> float | None:
    """Retry-After when sent, else the google.rpc.RetryInfo retryDelay among Google's error details."""
    hint = retry_after_seconds(headers)
    if hint is not None:
        return hint
    for detail in details:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            return parse_duration(str(detail.get("retryDelay") or ""))
    return None


# ---- bodies ----


def json_or_none(response: httpx.Response) -> Any:
    """The decoded JSON body, or None when the body is not JSON."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def short_text(response: httpx.Response, limit: int = 300) -> str:
    text = response.text.strip()
    return text[:limit] + ("..." if len(text) > limit else "")
