"""A fake Gemini API for text and vision: generateContent and streamGenerateContent (alt=sse).

Bodies are checked as protobuf JSON is (unknown names refused, snake_case accepted); inline images
must decode. Errors, 429 with google.rpc.RetryInfo, and refusals (promptFeedback.blockReason, or a
candidate finishReason of SAFETY) are what the real service sends. The default answer names the
size and average colour of the last image sent, or echoes the last words of the prompt.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import httpx
from PIL import Image, ImageStat, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from imagestudio.language.gemini_chat import GeminiChatModel
from tests.fakes.common import FakeService, Fault, client_for, record
from tests.fakes.gemini import FakeGemini, InvalidRequest, _fields, error_response

BASE_URL = "https://generativelanguage.googleapis.com"
MODELS = ("gemini-2.5-flash", "gemini-2.5-flash-lite")
BODY_FIELDS = {"contents", "systemInstruction", "generationConfig", "safetySettings"}
CONFIG_FIELDS = {"temperature", "topP", "topK", "maxOutputTokens", "stopSequences", "candidateCount"}
IMAGE_TOKENS = 258  # what Gemini counts for one image up to 384 pixels a side


class FakeGeminiText(FakeService):
    def __init__(self, api_key: str = "AIzaFakeGeminiTextKey0000") -> None:
        super().__init__(api_key)
        self._replies: deque[str] = deque()
        self.images_seen: list[Image.Image] = []
        # The image fake's key checks and fault answers are the service's; reuse them.
        self._errors = FakeGemini(api_key)
        self.app = Starlette(routes=[Route("/v1beta/models/{target}", self._endpoint, methods=["POST"])])

    def reply_next(self, *texts: str) -> None:
        self._replies.extend(texts)

    async def _endpoint(self, request: Request) -> Response:
        recorded = await record(request)
        self.requests.append(recorded)
        presented = recorded.headers.get("x-goog-api-key")
        if presented != self.api_key:
            self._errors.requests.clear()
            return await self._errors._endpoint(request)  # the real 400/403 answers for a bad key
        model, _, method = request.path_params["target"].partition(":")
        if method not in ("generateContent", "streamGenerateContent"):
            return error_response(404, "NOT_FOUND", f"Method {method or '(none)'} not found.")
        if model not in MODELS:
            return error_response(
                404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is not supported."
            )
        fault = self.next_fault()
        await self.delay(fault)
        if fault is not None and fault.kind not in ("slow", "content"):
            return self._errors._fault_response(fault)
        try:
            body = self._validate(recorded.json)
        except InvalidRequest as error:
            return error_response(error.code, error.status, error.message, error.details)
        if fault is not None and fault.kind == "content":
            refusal = _refusal(fault)
            if method == "streamGenerateContent":  # the stream carries the refusal as its one event
                return StreamingResponse(_one_event(refusal), media_type="text/event-stream")
            return JSONResponse(refusal)
        reply = self._replies.popleft() if self._replies else self._default_reply(body)
        usage = {
            "promptTokenCount": _prompt_tokens(body),
            "candidatesTokenCount": len(reply.split()),
        }
        usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
        self.completed += 1
        if method == "streamGenerateContent":
            if recorded.query.get("alt") != "sse":
                return error_response(400, "INVALID_ARGUMENT", "this fake streams only with alt=sse")
            return StreamingResponse(_events(model, reply, usage), media_type="text/event-stream")
        return JSONResponse(_answer(model, reply, usage, final=True))

    def _validate(self, raw: Any) -> dict[str, Any]:
        body = _fields(raw, BODY_FIELDS, "")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
        for content in contents:
            content = _fields(content, {"role", "parts"}, "contents[0]")
            if content.get("role") not in ("user", "model"):
                raise InvalidRequest("Please use a valid role: user, model.")
            for part in content.get("parts") or []:
                part = _fields(part, {"text", "inlineData"}, "contents[0].parts[0]")
                if "inlineData" in part:
                    self.images_seen.append(_decode(part["inlineData"]))
        if "generationConfig" in body:
            _fields(body["generationConfig"], CONFIG_FIELDS, "generation_config")
        return raw

    def _default_reply(self, body: dict[str, Any]) -> str:
        last = body["contents"][-1]
        if any("inline_data" in part or "inlineData" in part for part in last["parts"]):
            image = self.images_seen[-1]
            red, green, blue = (int(v) for v in ImageStat.Stat(image.convert("RGB")).mean)
            return f"A picture of {image.width}x{image.height} pixels, mostly #{red:02x}{green:02x}{blue:02x}."
        words = " ".join(part.get("text", "") for part in last["parts"]).split()
        return "An answer about " + " ".join(words[-8:])


def _decode(blob: Any) -> Image.Image:
    blob = _fields(blob, {"mimeType", "data"}, "inline_data")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(blob.get("data", ""), validate=True)))
        image.load()
    except (binascii.Error, ValueError, UnidentifiedImageError, OSError):
        raise InvalidRequest("Unable to process input image. Please retry or report in the forum.") from None
    return image


def _prompt_tokens(body: dict[str, Any]) -> int:
    total = 0
    for content in body["contents"]:
        for part in content["parts"]:
            total += len(part["text"].split()) if "text" in part else IMAGE_TOKENS
    return total


def _answer(model: str, text: str, usage: dict[str, int] | None, *, final: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    answer: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
    if usage is not None:
        answer["usageMetadata"] = usage
    return answer


async def _events(model: str, reply: str, usage: dict[str, int]) -> AsyncIterator[bytes]:
    words = reply.split(" ")
    for position, word in enumerate(words):
        last = position == len(words) - 1
        piece = word if position == 0 else " " + word
        answer = _answer(model, piece, usage if last else None, final=last)
        yield f"data: {json.dumps(answer)}\r\n\r\n".encode()


async def _one_event(answer: dict[str, Any]) -> AsyncIterator[bytes]:
    yield f"data: {json.dumps(answer)}\r\n\r\n".encode()


def _refusal(fault: Fault) -> dict[str, Any]:
    if fault.options.get("where") == "prompt":
        return {
            "promptFeedback": {"blockReason": fault.options.get("reason", "PROHIBITED_CONTENT")},
            "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
        }
    return {
        "candidates": [
            {
                "finishReason": fault.options.get("reason", "SAFETY"),
                "index": 0,
                "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}],
            }
        ],
        "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7},
    }


def gemini_chat_model(
    fake: FakeGeminiText,
    client: httpx.AsyncClient | None = None,
    *,
    api_key: str | None = None,
    model: str = "gemini-2.5-flash",
    **options: Any,
) -> GeminiChatModel:
    key = fake.api_key if api_key is None else api_key
    return GeminiChatModel(
        client=client or client_for(fake.app, BASE_URL), base_url=BASE_URL, api_key=key, model=model, **options
    )
