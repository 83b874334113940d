"""Google Gemini text and vision (generateContent on the Gemini API).

Wire format (https://ai.google.dev/api/generate-content):
- POST {base}/v1beta/models/{model}:generateContent with the key in `x-goog-api-key`;
  `:streamGenerateContent?alt=sse` streams the same answers as server-sent `data:` events;
- the body is `contents[] {role: user|model, parts[]}` with `text` parts and `inline_data {mime_type,
  data}` image parts, an optional `systemInstruction`, and `generationConfig {maxOutputTokens,
  temperature}`;
- the text is in `candidates[0].content.parts[].text`; usage is `usageMetadata {promptTokenCount,
  candidatesTokenCount}` (on the last event when streaming);
- a refused prompt has `promptFeedback.blockReason`; a refused answer a `finishReason` such as
  SAFETY, PROHIBITED_CONTENT, BLOCKLIST or SPII;
- errors are `{"error": {"code", "message", "status", "details"}}`; 429 RESOURCE_EXHAUSTED carries a
  `google.rpc.RetryInfo` detail with `retryDelay`.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx

from imagestudio.kit.answers import google_retry_hint, json_or_none, short_text
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
    RATE_LIMITED,
    HostedLanguageModel,
    StreamPiece,
    token_count,
)
from imagestudio.language.tasks import prepare_image

DEFAULT_MODEL = "gemini-2.5-flash"
_REFUSED_FINISH = frozenset(
    {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT"}
)
_AUTH_STATUSES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})
_RETRIABLE_STATUSES = frozenset({"UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"})


class GeminiChatModel(HostedLanguageModel):
    name = "gemini"
    kind = "gemini"
    service_label = "Gemini API"

    def configuration_problem(self) -> str | None:
        if self._api_key is None:
            return "Gemini API key not set (IMAGESTUDIO_GEMINI_API_KEY)"
        return None

    async def complete(self, request: ChatRequest) -> ChatResult:
        model = self._ready_for(request)
        response = await self.post(
            f"{self._base_url}/v1beta/models/{model}:generateContent",
            headers=self._headers(),
            body=_body(request),
        )
        body = json_or_none(response)
        if not isinstance(body, dict):
            raise LanguagePermanentError(
                f"Gemini answered with something that is not JSON ({short_text(response, 120)!r})", code=BAD_RESPONSE
            )
        text = _text_of(body)
        return ChatResult(text, provider=self.name, model=_model_of(body, model), usage=_usage(body))

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        model = self._ready_for(request)
        url = f"{self._base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        async for item in self.streamed_answer(url, headers=self._headers(), body=_body(request), model=model):
            yield item

    def _stream_piece(self, event: dict[str, Any]) -> StreamPiece:
        if isinstance(event.get("error"), dict):
            raise self._error_from_body(200, event["error"], httpx.Headers())
        usage = _usage(event) if "usageMetadata" in event else None
        return StreamPiece(_text_of(event, allow_empty=True), _model_of(event, ""), usage)

    def _headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self._api_key or ""}

    def _error_from(self, response: httpx.Response) -> LanguageError:
        body = json_or_none(response)
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            error = {"message": short_text(response) or response.reason_phrase}
        return self._error_from_body(response.status_code, error, response.headers)

    def _error_from_body(self, status: int, error: dict, headers: httpx.Headers) -> LanguageError:
        grpc_status = str(error.get("status") or "")
        details = error.get("details") if isinstance(error.get("details"), list) else []
        reasons = {detail.get("reason") for detail in details if isinstance(detail, dict)}
        message = error.get("message") or "no message"
        text = self._redact(f"Gemini {status}{f' {grpc_status}' if grpc_status else ''}: {message}")
        if "API_KEY_INVALID" in reasons or grpc_status in _AUTH_STATUSES or status in (401, 403):
            return LanguagePermanentError(text, code=AUTH_FAILED)
        if status == 429 or grpc_status == "RESOURCE_EXHAUSTED":
            return LanguageRetriableError(text, retry_after=google_retry_hint(headers, details), code=RATE_LIMITED)
        if status >= 500 or status == 408 or grpc_status in _RETRIABLE_STATUSES:
            return LanguageRetriableError(text, retry_after=google_retry_hint(headers, details))
        return LanguagePermanentError(text)


def _body(request: ChatRequest) -> dict[str, Any]:
    system = [message.text for message in request.messages if message.role == "system"]
    contents = []
    for message in request.messages:
        if message.role == "system":
            continue
        parts: list[dict[str, Any]] = [{"text": message.text}]
        for image in message.images:
            data = base64.b64encode(prepare_image(image)).decode("ascii")
            parts.append({"inline_data": {"mime_type": "image/png", "data": data}})
        contents.append({"role": "model" if message.role == "assistant" else "user", "parts": parts})
    config: dict[str, Any] = {"maxOutputTokens": request.max_tokens}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    body: dict[str, Any] = {"contents": contents, "generationConfig": config}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    return body


def _text_of(body: dict, *, allow_empty: bool = False) -> str:
    feedback = body.get("promptFeedback")
    block = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if block:
        raise LanguageRefusedError(f"Gemini refused the prompt ({block})")
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        if allow_empty:
            return ""
        raise LanguagePermanentError("Gemini answered without candidates", code=BAD_RESPONSE)
    candidate = candidates[0]
    finish = str(candidate.get("finishReason") or "")
    if finish in _REFUSED_FINISH:
        raise LanguageRefusedError(f"Gemini stopped the answer (finishReason {finish})")
    content = candidate.get("content") if isinstance(candidate.get("content"), dict) else {}
    parts = content.get("parts") if isinstance(content.get("parts"), list) else []
    # Thinking models may add thought parts; only the answer's text counts.
    text = "".join(
        part["text"]
        for part in parts
        if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
    )
    if not text and not allow_empty:
        raise LanguagePermanentError(
            f"Gemini answered with no text (finishReason {finish or 'missing'})", code=BAD_RESPONSE
        )
    return text


def _usage(body: dict) -> Usage:
    metadata = body.get("usageMetadata")
    if not isinstance(metadata, dict):
        return Usage()
    return Usage(token_count(metadata.get("promptTokenCount")), token_count(metadata.get("candidatesTokenCount")))


def _model_of(body: dict, fallback: str) -> str:
    version = body.get("modelVersion")
    return version if isinstance(version, str) and version else fallback
