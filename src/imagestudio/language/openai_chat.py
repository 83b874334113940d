"""OpenAI-compatible chat completions: OpenAI, Ollama, vLLM, llama.cpp's server, LM Studio, OpenRouter.

Wire format (https://platform.openai.com/docs/api-reference/chat):
- POST {base}/chat/completions with `Authorization: Bearer <key>` (local servers ignore it, so a
  key is optional); the body holds `model`, `messages`, `max_tokens`, optional `temperature`;
- images are `image_url` content parts holding `data:image/png;base64,...` URLs;
- an answer is `choices[0].message.content` with `finish_reason`, and `usage {prompt_tokens,
  completion_tokens}`; a refusal is `message.refusal` or `finish_reason: "content_filter"`;
- with `stream: true` the answer comes as server-sent `data:` chunks whose `choices[0].delta.content`
  add up to the text, ending with `data: [DONE]`; `stream_options.include_usage` adds a final chunk
  with empty `choices` and the `usage`;
- errors are `{"error": {"message", "type", "param", "code"}}`; 429 carries `retry-after` (or the
  `x-ratelimit-reset-*` durations); a prompt refused by moderation is 400 with code
  `content_policy_violation` or `content_filter`.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx

from imagestudio.kit.answers import json_or_none, parse_duration, retry_after_seconds, short_text
from imagestudio.language.base import (
    ChatRequest,
    ChatResult,
    LanguageError,
    LanguagePermanentError,
    LanguageRefusedError,
    LanguageRetriableError,
    StreamItem,
    Usage,
)
from imagestudio.language.hosted import (
    AUTH_FAILED,
    BAD_RESPONSE,
    QUOTA_EXCEEDED,
    RATE_LIMITED,
    HostedLanguageModel,
    StreamPiece,
    token_count,
)
from imagestudio.language.tasks import prepare_image

_REFUSAL_CODES = frozenset({"content_policy_violation", "content_filter", "moderation_blocked"})
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


class OpenAIChatModel(HostedLanguageModel):
    name = "openai"
    kind = "openai-compatible"
    service_label = "language service"

    def configuration_problem(self) -> str | None:
        if self._base_url is None:
            return "no language service URL set (IMAGESTUDIO_LANGUAGE_URL)"
        if self._model is None:
            return "no language model set (IMAGESTUDIO_LANGUAGE_MODEL)"
        return None

    async def complete(self, request: ChatRequest) -> ChatResult:
        model = self._ready_for(request)
        response = await self.post(self._url(), headers=self._headers(), body=self._body(request, model))
        body = json_or_none(response)
        choice = _first_choice(body)
        if choice is None:
            raise LanguagePermanentError(
                self._redact(f"the language service answered without choices ({short_text(response, 120)!r})"),
                code=BAD_RESPONSE,
            )
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        _raise_if_refused(message.get("refusal"), choice.get("finish_reason"))
        content = message.get("content")
        if not isinstance(content, str):
            raise LanguagePermanentError("the language service answered without text", code=BAD_RESPONSE)
        answered_model = body.get("model") if isinstance(body.get("model"), str) else model
        return ChatResult(content, provider=self.name, model=answered_model or model, usage=_usage(body.get("usage")))

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        model = self._ready_for(request)
        body = self._body(request, model)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        async for item in self.streamed_answer(self._url(), headers=self._headers(), body=body, model=model):
            yield item

    def _stream_piece(self, event: dict[str, Any]) -> StreamPiece:
        if isinstance(event.get("error"), dict):  # an error in the middle of a stream
            raise self._error_from_body(200, event, httpx.Headers())
        answered = event["model"] if isinstance(event.get("model"), str) and event["model"] else None
        usage = _usage(event["usage"]) if isinstance(event.get("usage"), dict) else None
        choice = _first_choice(event)
        if choice is None:
            return StreamPiece(None, answered, usage)
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        _raise_if_refused(delta.get("refusal"), choice.get("finish_reason"))
        text = delta.get("content")
        return StreamPiece(text if isinstance(text, str) else None, answered, usage)

    # ---- wire format ----

    def _url(self) -> str:
        return f"{self._base_url}/chat/completions"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    @staticmethod
    def _body(request: ChatRequest, model: str) -> dict[str, Any]:
        messages: list[dict[str, Any]] = []
        for message in request.messages:
            if not message.images:
                messages.append({"role": message.role, "content": message.text})
                continue
            parts: list[dict[str, Any]] = [{"type": "text", "text": message.text}]
            for image in message.images:
                data = base64.b64encode(prepare_image(image)).decode("ascii")
                parts.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}})
            messages.append({"role": message.role, "content": parts})
        body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": request.max_tokens}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        return body

    def _error_from(self, response: httpx.Response) -> LanguageError:
        body = json_or_none(response)
        if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
            body = {"error": {"message": short_text(response) or response.reason_phrase}}
        return self._error_from_body(response.status_code, body, response.headers)

    def _error_from_body(self, status: int, body: dict, headers: httpx.Headers) -> LanguageError:
        error = body["error"]
        message = error.get("message") or "no message"
        code = str(error.get("code") or "")
        error_type = str(error.get("type") or "")
        text = self._redact(f"language service {status}: {message}")
        if code in _REFUSAL_CODES or error_type in _REFUSAL_CODES:
            return LanguageRefusedError(text)
        if code in _QUOTA_CODES or error_type in _QUOTA_CODES:
            return LanguagePermanentError(text, code=QUOTA_EXCEEDED)
        if status == 429:
            return LanguageRetriableError(text, retry_after=_retry_hint(headers), code=RATE_LIMITED)
        if status in (408, 409) or status >= 500:
            return LanguageRetriableError(text, retry_after=_retry_hint(headers))
        if status in (401, 403):
            return LanguagePermanentError(text, code=AUTH_FAILED)
        if status == 200:  # an error event inside a stream: the service says what it is only in words
            return (
                LanguageRetriableError(text)
                if error_type in ("server_error", "overloaded_error")
                else (LanguagePermanentError(text))
            )
        return LanguagePermanentError(text)


def _first_choice(body: object) -> dict | None:
    if not isinstance(body, dict):
        return None
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    return choices[0]


def _raise_if_refused(refusal: object, finish_reason: object) -> None:
    if isinstance(refusal, str) and refusal:
        raise LanguageRefusedError(f"the model refused: {refusal}")
    if finish_reason == "content_filter":
        raise LanguageRefusedError("the service's content filter stopped the answer")


def _usage(block: object) -> Usage:
    if not isinstance(block, dict):
        return Usage()
    return Usage(token_count(block.get("prompt_tokens")), token_count(block.get("completion_tokens")))


def _retry_hint(headers: httpx.Headers) -> float | None:
    """Retry-After when sent; otherwise the reset time of the exhausted budget (requests, then tokens)."""
    hint = retry_after_seconds(headers)
    if hint is not None:
        return hint
    return parse_duration(headers.get("x-ratelimit-reset-requests")) or parse_duration(
        headers.get("x-ratelimit-reset-tokens")
    )
