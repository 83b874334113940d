"""Pieces every fake provider server shares: request recording, scripted faults, real PNGs.

Each fake is a small Starlette app mounted behind `httpx.ASGITransport`, so the adapter under test
runs its real HTTP code and only the network hop is replaced.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
from PIL import Image
from starlette.datastructures import UploadFile
from starlette.requests import Request


@dataclass
class UploadedFile:
    filename: str | None
    content_type: str | None
    data: bytes

    def image(self) -> Image.Image:
        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


@dataclass
class RecordedRequest:
    """What the fake saw on the wire, for assertions after the call."""

    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    content_type: str
    json: Any = None
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[UploadedFile]] = field(default_factory=dict)

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def file(self, name: str) -> UploadedFile | None:
        values = self.files.get(name)
        return values[0] if values else None


async def record(request: Request) -> RecordedRequest:
    content_type = request.headers.get("content-type", "")
    recorded = RecordedRequest(
        method=request.method,
        path=request.url.path,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        content_type=content_type,
    )
    if content_type.startswith("multipart/form-data"):
        form = await request.form()
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                recorded.files.setdefault(name, []).append(UploadedFile(value.filename, value.content_type, data))
            else:
                recorded.fields.setdefault(name, []).append(value)
    elif content_type.startswith("application/json"):
        body = await request.body()
        try:
            recorded.json = json.loads(body)
        except ValueError:
            recorded.json = None
    return recorded


@dataclass
class Fault:
    """One scripted misbehaviour, consumed by the next request that reaches the fake."""

    kind: str
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    # Fake-specific knobs, e.g. {"header": False} to leave Retry-After out of a 429.
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def rate_limit(cls, retry_after: float | None = 7, **options: Any) -> Fault:
        return cls("rate_limit", status=429, retry_after=retry_after, options=options)

    @classmethod
    def server_error(cls, status: int = 500, retry_after: float | None = None) -> Fault:
        return cls("server_error", status=status, retry_after=retry_after)

    @classmethod
    def content_rejection(cls, **options: Any) -> Fault:
        return cls("content", options=options)

    @classmethod
    def malformed(cls, **options: Any) -> Fault:
        return cls("malformed", options=options)

    @classmethod
    def slow(cls, delay: float) -> Fault:
        return cls("slow", delay=delay)

    @classmethod
    def quota(cls) -> Fault:
        return cls("quota")


class FakeService:
    """Base for the fake servers: holds the expected key, the recorded requests and the fault script."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        # Keys of other accounts the service also takes (people bringing their own keys).
        self.other_keys: set[str] = set()
        self.requests: list[RecordedRequest] = []
        self.completed = 0  # requests answered with a success, to tell abandoned ones apart
        # None lets a request through untouched, so a fault can wait for a given request.
        self._faults: deque[Fault | None] = deque()

    def accepts(self, presented: str | None) -> bool:
        return presented is not None and (presented == self.api_key or presented in self.other_keys)

    def fail_next(self, *faults: Fault) -> None:
        self._faults.extend(faults)

    def fail_request(self, number: int, fault: Fault) -> None:
        """Let `number - 1` requests through (after any faults already scripted), then play `fault`."""
        self._faults.extend([None] * (number - 1))
        self._faults.append(fault)

    def next_fault(self) -> Fault | None:
        return self._faults.popleft() if self._faults else None

    @property
    def last(self) -> RecordedRequest:
        assert self.requests, "the fake received no request"
        return self.requests[-1]

    async def delay(self, fault: Fault | None) -> None:
        if fault is not None and fault.kind == "slow":
            await anyio.sleep(fault.delay)


# ---- images ----


def colour_for(prompt: str) -> tuple[int, int, int]:
    """A stable colour derived from the prompt, so tests can tell which prompt produced an image."""
    digest = hashlib.sha256(prompt.encode()).digest()
    return digest[0], digest[1], digest[2]


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def solid_png(width: int, height: int, prompt: str) -> bytes:
    return png_bytes(Image.new("RGB", (width, height), colour_for(prompt)))


def paint_where(base: Image.Image, region: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    """Base with colour painted where region (an "L" image) is non-zero: how fakes show an edit."""
    out = base.convert("RGB").copy()
    out.paste(Image.new("RGB", out.size, colour), (0, 0), region.convert("L"))
    return out


def client_for(app: Any, base_url: str) -> httpx.AsyncClient:
    """An httpx client whose only transport is the fake app (nothing leaves the process)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


class ProgressLog:
    """A ProgressCallback that remembers every (step, total) it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def __call__(self, step: int, total: int) -> None:
        self.calls.append((step, total))


def pixel_colour(image: Image.Image, x: int, y: int) -> tuple[int, int, int]:
    red, green, blue = image.convert("RGB").getpixel((x, y))[:3]
    return red, green, blue


async def cancel_midway(call: Callable[[], Awaitable[object]], cancel: Any, after: float) -> BaseException | None:
    """Run call, set the cancellation token after `after` seconds, and return how the call ended."""
    outcome: list[BaseException] = []

    async def attempt() -> None:
        try:
            await call()
        except Exception as exc:
            outcome.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(attempt)
        await anyio.sleep(after)
        cancel.cancel()
    return outcome[0] if outcome else None
