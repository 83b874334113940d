"""A fake OpenAI-compatible chat completions server speaking the real wire format.

Route: POST /v1/chat/completions. Answers `chat.completion` objects, or with `stream: true` a
`text/event-stream` of `chat.completion.chunk` events (`data: {...}` lines, the last chunk with
`usage` when `stream_options.include_usage` is set, then `data: [DONE]`). Errors are
`{"error": {message, type, param, code}}` with the real status codes; 429 carries retry-after and
x-ratelimit-* headers. Content refusals come the three ways OpenAI-compatible services express
them: `message.refusal`, `finish_reason: "content_filter"`, or a 400 `content_policy_violation`.

The default answer proves what arrived: for an image, its size and average colour; for text, the
last user words. `reply_next()` scripts an exact answer; `hold_stream()` makes the next streamed
answers stop after some words until the test lets them go on (a slow model, without timing).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx
from PIL import Image, ImageStat, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from imagestudio.language.openai_chat import OpenAIChatModel
from tests.fakes.common import FakeService, Fault, RecordedRequest, client_for, record
from tests.fakes.openai import error_body, masked_key

BASE_URL = "http://127.0.0.1:11434/v1"
MODELS = ("gpt-4o-mini", "llava:7b", "llama3.2:1b")
ROLES = {"system", "developer", "user", "assistant", "tool"}
PARAMS = {
    "model",
    "messages",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stream",
    "stream_options",
    "stop",
    "seed",
    "n",
    "user",
    "response_format",
}
# What a vision model bills for one image at low detail.
IMAGE_TOKENS = 85


class InvalidRequest(Exception):
    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


class FakeChatCompletions(FakeService):
    def __init__(self, api_key: str | None = "sk-fake-chat-key-0000", models: tuple[str, ...] = MODELS) -> None:
        super().__init__(api_key or "")
        self.requires_key = api_key is not None
        self.models = models
        self._replies: deque[str] = deque()
        # The text of the last answer given (streamed or not).
        self.last_reply: str | None = None
        self._hold: tuple[int, threading.Event] | None = None
        # Set once a held stream has sent its first words and waits.
        self.holding = threading.Event()
        self.images_seen: list[Image.Image] = []
        self.app = Starlette(routes=[Route("/v1/chat/completions", self._completions, methods=["POST"])])

    def reply_next(self, *texts: str) -> None:
        self._replies.extend(texts)

    def hold_stream(self, after_words: int) -> threading.Event:
        """Streamed answers send `after_words` words, then wait until the returned event is set."""
        release = threading.Event()
        self._hold = (after_words, release)
        self.holding.clear()
        return release

    async def _completions(self, request: Request) -> Response:
        recorded = await record(request)
        self.requests.append(recorded)
        refused = self._check_key(recorded)
        if refused is not None:
            return refused
        fault = self.next_fault()
        await self.delay(fault)
        if fault is not None and fault.kind not in ("slow", "content"):
            return _fault_response(fault)
        try:
            body = self._validate(recorded)
        except InvalidRequest as error:
            return JSONResponse(error_body(error.message, param=error.param, code=error.code), status_code=error.status)
        if fault is not None and fault.kind == "content" and fault.options.get("style") == "error":
            return JSONResponse(
                error_body(
                    "Your request was rejected as a result of our safety system.",
                    param="messages",
                    code="content_policy_violation",
                ),
                status_code=400,
            )
        reply = self._replies.popleft() if self._replies else self._default_reply(body)
        self.last_reply = reply
        usage = {
            "prompt_tokens": _prompt_tokens(body),
            "completion_tokens": len(reply.split()),
        }
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        refusal = fault.options.get("style", "refusal") if fault is not None and fault.kind == "content" else None
        self.completed += 1
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _chunks(body["model"], reply, usage if include_usage else None, refusal, self._hold, self.holding),
                media_type="text/event-stream",
            )
        return JSONResponse(_completion(body["model"], reply, usage, refusal))

    def _check_key(self, recorded: RecordedRequest) -> Response | None:
        if not self.requires_key:
            return None
        auth = recorded.headers.get("authorization")
        if not auth:
            return JSONResponse(
                error_body(
                    "You didn't provide an API key. You need to provide your API key in an Authorization header "
                    "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
                ),
                status_code=401,
            )
        if auth != f"Bearer {self.api_key}":
            presented = auth.removeprefix("Bearer ").strip()
            return JSONResponse(
                error_body(f"Incorrect API key provided: {masked_key(presented)}.", code="invalid_api_key"),
                status_code=401,
            )
        return None

    def _validate(self, recorded: RecordedRequest) -> dict[str, Any]:
        body = recorded.json
        if not isinstance(body, dict):
            raise InvalidRequest("We could not parse the JSON body of your request.")
        for name in body:
            if name not in PARAMS:
                raise InvalidRequest(f"Unrecognized request argument supplied: {name}")
        model = body.get("model")
        if not model:
            raise InvalidRequest("you must provide a model parameter", param="model")
        if model not in self.models:
            raise InvalidRequest(
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
                status=404,
            )
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("[] is too short - 'messages'", param="messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise InvalidRequest(f"Invalid value for 'messages[{index}].role'.", param=f"messages[{index}].role")
            content = message.get("content")
            if isinstance(content, str):
                continue
            if not isinstance(content, list):
                raise InvalidRequest(f"Invalid type for 'messages[{index}].content'.", param=f"messages[{index}]")
            for part in content:
                self._check_part(part, index)
        if "max_tokens" in body and (not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1):
            raise InvalidRequest("Invalid 'max_tokens': integer below minimum value.", param="max_tokens")
        return body

    def _check_part(self, part: Any, index: int) -> None:
        where = f"messages[{index}].content"
        if not isinstance(part, dict) or part.get("type") not in ("text", "image_url"):
            raise InvalidRequest(f"Invalid value for '{where}[].type'.", param=where)
        if part["type"] == "text":
            if not isinstance(part.get("text"), str):
                raise InvalidRequest(f"Missing required parameter: '{where}[].text'.", param=where)
            return
        url = (part.get("image_url") or {}).get("url") if isinstance(part.get("image_url"), dict) else None
        if not isinstance(url, str) or not url.startswith("data:image/"):
            raise InvalidRequest(
                "Invalid image URL: expected a base64 data URL.", param=where, code="invalid_image_url"
            )
        _, _, data = url.partition(";base64,")
        try:
            image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
            image.load()
        except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
            raise InvalidRequest(
                "You uploaded an unsupported image. Please make sure your image is valid.",
                param=where,
                code="invalid_image_format",
            ) from None
        self.images_seen.append(image)

    def _default_reply(self, body: dict[str, Any]) -> str:
        last = next(m for m in reversed(body["messages"]) if m["role"] == "user")
        content = last["content"]
        if isinstance(content, list):
            images = [part for part in content if part["type"] == "image_url"]
            if images:
                image = self.images_seen[-1]
                red, green, blue = (int(v) for v in ImageStat.Stat(image.convert("RGB")).mean)
                return f"A picture of {image.width}x{image.height} pixels, mostly #{red:02x}{green:02x}{blue:02x}."
            content = " ".join(part["text"] for part in content if part["type"] == "text")
        words = content.split()
        return "An answer about " + " ".join(words[-8:])


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for message in body["messages"]:
        content = message["content"]
        if isinstance(content, str):
            total += len(content.split())
            continue
        for part in content:
            total += len(part["text"].split()) if part["type"] == "text" else IMAGE_TOKENS
    return total


def _completion(model: str, reply: str, usage: dict[str, int], refusal: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply, "refusal": None}
    finish = "stop"
    if refusal == "refusal":
        message = {"role": "assistant", "content": None, "refusal": "I'm sorry, I can't help with that."}
    elif refusal == "filter":
        message["content"] = ""
        finish = "content_filter"
    return {
        "id": f"chatcmpl-fake{int(time.time() * 1000)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


async def _chunks(
    model: str,
    reply: str,
    usage: dict[str, int] | None,
    refusal: str | None,
    hold: tuple[int, threading.Event] | None = None,
    holding: threading.Event | None = None,
) -> AsyncIterator[bytes]:
    base = {"id": "chatcmpl-fakestream", "object": "chat.completion.chunk", "created": int(time.time()), "model": model}

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return f"data: {json.dumps({**base, 'choices': choices, **extra})}\n\n".encode()

    yield event([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
    if refusal == "refusal":
        yield event([{"index": 0, "delta": {"refusal": "I'm sorry, I can't help with that."}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
    else:
        words = reply.split(" ")
        for position, word in enumerate(words):
            if hold is not None and position == hold[0]:
                if holding is not None:
                    holding.set()
                await asyncio.to_thread(hold[1].wait)  # a threading.Event: any thread may release it
            piece = word if position == 0 else " " + word
            yield event([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        yield event([{"index": 0, "delta": {}, "finish_reason": "content_filter" if refusal == "filter" else "stop"}])
    if usage is not None:
        yield event([], usage=usage)
    yield b"data: [DONE]\n\n"


def _fault_response(fault: Fault) -> Response:
    if fault.kind == "rate_limit":
        headers = {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": fault.options.get("reset", "1s"),
            "x-ratelimit-reset-tokens": "6m0s",
        }
        if fault.options.get("header", True) and fault.retry_after is not None:
            headers["retry-after"] = f"{fault.retry_after:g}"
        return JSONResponse(
            error_body(
                "Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): "
                "Limit 500, Used 500, Requested 1. Please try again in 120ms.",
                type_="requests",
                code="rate_limit_exceeded",
            ),
            status_code=429,
            headers=headers,
        )
    if fault.kind == "quota":
        return JSONResponse(
            error_body(
                "You exceeded your current quota, please check your plan and billing details.",
                type_="insufficient_quota",
                code="insufficient_quota",
            ),
            status_code=429,
        )
    if fault.kind == "server_error":
        headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        return JSONResponse(
            error_body(
                "The server had an error while processing your request. Sorry about that!", type_="server_error"
            ),
            status_code=fault.status or 500,
            headers=headers,
        )
    if fault.kind == "malformed":
        return Response(b"<html>502 Bad Gateway</html>", status_code=200, media_type="text/html")
    raise AssertionError(f"the fake cannot play {fault.kind}")


def chat_model(
    fake: FakeChatCompletions,
    client: httpx.AsyncClient | None = None,
    *,
    api_key: str | None = None,
    model: str = "gpt-4o-mini",
    **options: Any,
) -> OpenAIChatModel:
    """An OpenAIChatModel whose only network is the fake; api_key defaults to the one the fake accepts."""
    key = (fake.api_key or None) if api_key is None else api_key
    return OpenAIChatModel(
        client=client or client_for(fake.app, BASE_URL), base_url=BASE_URL, api_key=key, model=model, **options
    )
