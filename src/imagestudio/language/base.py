"""The language and vision contract: what every text model implements and what the studio relies on.

A `LanguageModel` answers chat requests (text and images in, text out, optionally streamed) and
offers the two tasks the studio needs from it: describing an image (a caption) and rewriting a
prompt (enhancement). Implementations raise the typed errors below; whoever calls decides what is
retried, exactly as the image engine does with `providers.base`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from PIL import Image

from imagestudio.models.enums import CaptionStyle

__all__ = ["CaptionStyle"]  # re-exported: the style is part of the contract


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system, user or assistant
    text: str
    images: Sequence[Image.Image] = ()


@dataclass(frozen=True)
class ChatRequest:
    messages: Sequence[ChatMessage]
    # None: the implementation's configured model (the vision model when an image is attached).
    model: str | None = None
    max_tokens: int = 512
    temperature: float | None = None

    @property
    def has_images(self) -> bool:
        return any(message.images for message in self.messages)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    text: str
    provider: str
    model: str
    usage: Usage = field(default_factory=Usage)
    # False for the built-in describer and template: the studio says so wherever the text is shown.
    by_ai: bool = True


@dataclass(frozen=True)
class ChatDelta:
    """A piece of a streamed answer, in order; the stream ends with the full ChatResult."""

    text: str


StreamItem = ChatDelta | ChatResult

# The prompt builder options of seed 001, in the order they are phrased.
PROMPT_OPTION_NAMES = ("shot_type", "camera_angle", "style", "location", "lighting", "weather")


# ---- typed errors: the same four kinds as the image providers, with the same codes ----


class LanguageError(Exception):
    code = "language_model_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class LanguageRetriableError(LanguageError):
    """A transient failure (rate limit, 5xx, timeout). retry_after is the service's hint in seconds."""

    code = "provider_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class LanguageRefusedError(LanguageError):
    """The model refused the request on content grounds. Never retried."""

    code = "content_rejected"


class LanguageNotConfiguredError(LanguageError):
    """No URL, key or model is set, or this implementation cannot do what was asked."""

    code = "provider_not_configured"


class LanguagePermanentError(LanguageError):
    """A failure that will recur on retry (bad request, wrong key, unknown model, garbage answer)."""

    code = "provider_failed"


@runtime_checkable
class LanguageModel(Protocol):
    name: str
    kind: str

    def configuration_problem(self) -> str | None:
        """None when ready; otherwise a sentence saying what is missing."""
        ...

    def model_for(self, *, vision: bool) -> str:
        """The model a request without an explicit model goes to."""
        ...

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        """Deltas as they arrive, then exactly one ChatResult holding the whole text and usage."""
        ...

    async def describe(self, image: Image.Image, style: CaptionStyle, *, model: str | None = None) -> ChatResult: ...

    async def title(self, text: str, *, context: str | None = None) -> ChatResult:
        """A short title for a conversation that starts with this request. `context` is the session's
        note (brand colours, audience): every call made for a session passes it, as a system message."""
        ...

    async def enhance(
        self,
        prompt: str,
        options: Mapping[str, object],
        *,
        caption: str | None = None,
        model: str | None = None,
        context: str | None = None,
    ) -> ChatResult: ...

    async def aclose(self) -> None: ...
