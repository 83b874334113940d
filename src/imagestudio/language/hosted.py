"""Plumbing shared by the language models that call an HTTP service (OpenAI-compatible, Gemini).

Requests go through `post` and `stream_events`, which bound the whole exchange by a deadline and
turn transport failures into the typed errors of `base.py`. The key lives only in headers built per
call: never on the shared client, in a message, a log record or a repr. The injected
`httpx.AsyncClient` belongs to whoever built it, so `aclose()` leaves it open.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from imagestudio.kit.answers import redact
from imagestudio.language.base import (
    ChatDelta,
    ChatRequest,
    ChatResult,
    LanguageError,
    LanguageNotConfiguredError,
    LanguagePermanentError,
    LanguageRetriableError,
    StreamItem,
    Usage,
)
from imagestudio.language.tasks import ChatTasks

log = logging.getLogger(__name__)

TIMED_OUT = "provider_timeout"
BAD_RESPONSE = "provider_bad_response"
AUTH_FAILED = "provider_auth_failed"
RATE_LIMITED = "provider_rate_limited"
QUOTA_EXCEEDED = "provider_quota_exceeded"


@dataclass(frozen=True)
class StreamPiece:
    """What one event of a streamed answer adds: text, and the model or token usage once the service names them."""

    text: str | None = None
    model: str | None = None
    usage: Usage | None = None


class HostedLanguageModel(ChatTasks):
    name = "hosted"
    kind = "hosted"
    service_label = "language service"

    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        base_url: str | None,
        api_key: str | None,
        model: str | None,
        vision_model: str | None = None,
        timeout: float = 120.0,
        name: str | None = None,
    ) -> None:
        self._client = client
        self._base_url = (base_url or "").strip().rstrip("/") or None
        self._api_key = (api_key or "").strip() or None
        self._model = (model or "").strip() or None
        self._vision_model = (vision_model or "").strip() or self._model
        self._timeout = timeout
        if name:
            self.name = name

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, base_url={self._base_url!r}, model={self._model!r}, "
            f"key_set={self._api_key is not None})"
        )

    def configuration_problem(self) -> str | None:
        raise NotImplementedError

    def model_for(self, *, vision: bool) -> str:
        chosen = self._vision_model if vision else self._model
        if chosen is None:
            raise LanguageNotConfiguredError(self.configuration_problem() or f"{self.service_label}: no model set")
        return chosen

    async def aclose(self) -> None:
        """Nothing to release: the injected client is closed by its owner."""

    # ---- helpers for subclasses ----

    def _ready(self) -> None:
        problem = self.configuration_problem()
        if problem is not None:
            raise LanguageNotConfiguredError(problem)

    def _ready_for(self, request: ChatRequest) -> str:
        """The model a request goes to, once the service is known to be configured."""
        self._ready()
        return request.model or self.model_for(vision=request.has_images)

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def _error_from(self, response: httpx.Response) -> LanguageError:
        raise NotImplementedError

    async def post(self, url: str, *, headers: dict[str, str], body: dict[str, Any]) -> httpx.Response:
        """One JSON exchange within the deadline; a non-2xx answer becomes the service's typed error."""
        started = time.monotonic()
        try:
            with anyio.fail_after(self._timeout):
                response = await self._client.post(url, headers=headers, json=body, timeout=self._timeout)
        except Exception as error:
            raise self._transport_error(error) from None
        log.debug(
            "%s POST %s -> %s in %.2fs",
            self.name,
            httpx.URL(url).path,
            response.status_code,
            time.monotonic() - started,
        )
        if response.status_code >= 300:
            raise self._error_from(response)
        return response

    async def stream_events(self, url: str, *, headers: dict[str, str], body: dict[str, Any]) -> AsyncIterator[Any]:
        """The decoded JSON of each server-sent `data:` line, until `[DONE]` or the end of the body.

        The deadline bounds the whole stream, so a service that trickles cannot hold a reply open.
        No cancel scope spans a yield (the consumer may stop early); every read carries the time left.
        Consume it inside `contextlib.aclosing` so an early stop closes the connection at once.
        """
        deadline = time.monotonic() + self._timeout
        response: httpx.Response | None = None
        try:
            request = self._client.build_request("POST", url, headers=headers, json=body, timeout=self._timeout)
            with anyio.fail_after(self._timeout):
                response = await self._client.send(request, stream=True)
            if response.status_code >= 300:
                with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                    await response.aread()
                raise self._error_from(response)
            lines = response.aiter_lines()
            while True:
                with anyio.fail_after(max(0.0, deadline - time.monotonic())):
                    line = await anext(lines, None)
                if line is None or not line.startswith("data:"):
                    if line is None:
                        return
                    continue  # comments, event names and the blank lines between events
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    event = json.loads(data)
                except ValueError:
                    raise LanguagePermanentError(
                        f"{self.service_label} sent a stream event that is not JSON", code=BAD_RESPONSE
                    ) from None
                yield event
        except LanguageError:
            raise
        except Exception as error:
            raise self._transport_error(error) from None
        finally:
            if response is not None:
                await response.aclose()

    async def streamed_answer(
        self, url: str, *, headers: dict[str, str], body: dict[str, Any], model: str
    ) -> AsyncIterator[StreamItem]:
        """Each piece of text as a `ChatDelta`, then the whole answer as a `ChatResult`.

        `_stream_piece` reads one decoded event in the service's format (and raises the service's error
        when the event is one); the last model and usage an event names are the answer's.
        """
        pieces: list[str] = []
        usage = Usage()
        answered = model
        async with aclosing(self.stream_events(url, headers=headers, body=body)) as events:
            async for event in events:
                if not isinstance(event, dict):
                    continue
                piece = self._stream_piece(event)
                answered = piece.model or answered
                usage = piece.usage or usage
                if piece.text:
                    pieces.append(piece.text)
                    yield ChatDelta(piece.text)
        yield ChatResult("".join(pieces), provider=self.name, model=answered, usage=usage)

    def _stream_piece(self, event: dict[str, Any]) -> StreamPiece:
        raise NotImplementedError

    def _transport_error(self, error: BaseException) -> LanguageError:
        if isinstance(error, LanguageError):
            return error
        if isinstance(error, (TimeoutError, httpx.TimeoutException)):
            return LanguageRetriableError(
                f"{self.service_label} did not answer within {self._timeout:g}s", code=TIMED_OUT
            )
        if isinstance(error, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
            return LanguagePermanentError(
                self._redact(f"{self.service_label} URL is unusable: {error}"), code=BAD_RESPONSE
            )
        if isinstance(error, httpx.TransportError):
            return LanguageRetriableError(
                self._redact(f"{self.service_label} unreachable ({type(error).__name__}: {error})")
            )
        raise error


def token_count(value: object) -> int:
    """A token count from a usage block; anything that is not a non-negative integer counts as 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
