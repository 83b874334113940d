"""A fake Gemini API (generateContent) speaking the real wire format.

Route: POST /v1beta/models/{model}:generateContent. The key goes in `x-goog-api-key` (or `?key=`);
a missing key is 403 PERMISSION_DENIED, a wrong one 400 INVALID_ARGUMENT with the ErrorInfo reason
API_KEY_INVALID (and, like the real service, a DebugInfo detail that echoes the key). The body is
parsed like protobuf JSON: camelCase or snake_case names, and an unknown name is a 400
`Invalid JSON payload received. Unknown name "x"`. Images come back as inlineData parts.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagestudio.providers.gemini import GeminiProvider
from tests.fakes.common import FakeService, Fault, RecordedRequest, client_for, colour_for, png_bytes, record

BASE_URL = "https://generativelanguage.googleapis.com"

# The image models the fake serves, as the service lists them in November 2026: the Gemini 3 image
# models became generally available in May 2026; their -preview ids were shut down in June 2026 and
# gemini-2.5-flash-image in October 2026, so those answer 404 like the real service.
MODELS = {"gemini-3.1-flash-image", "gemini-3-pro-image"}
# What models.list names besides them: text and embedding models (Imagen was shut down in June 2026).
LISTED_MODELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("gemini-3.5-flash", "Gemini 3.5 Flash", ("generateContent", "countTokens", "createCachedContent")),
    ("gemini-3.1-pro-preview", "Gemini 3.1 Pro Preview", ("generateContent", "countTokens")),
    ("gemini-3.1-flash-image", "Nano Banana 2", ("generateContent", "countTokens")),
    ("gemini-3-pro-image", "Nano Banana Pro", ("generateContent", "countTokens")),
    ("gemini-3.1-flash-lite", "Gemini 3.1 Flash-Lite", ("generateContent", "countTokens")),
    ("gemini-embedding-001", "Gemini Embedding 001", ("embedContent", "countTextTokens")),
    ("gemini-3.1-flash-live", "Gemini 3.1 Flash Live", ("bidiGenerateContent",)),
)
ASPECT_RATIOS = {
    "1:1": (1024, 1024),
    "2:3": (832, 1248),
    "3:2": (1248, 832),
    "3:4": (864, 1184),
    "4:3": (1184, 864),
    "4:5": (896, 1152),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "16:9": (1344, 768),
    "21:9": (1536, 672),
}
IMAGE_SIZES = {"1K", "2K", "4K"}
TOKENS_PER_OUTPUT_IMAGE = 1290
TOKENS_PER_INPUT_IMAGE = 258

REQUEST_FIELDS = {
    "contents",
    "generationConfig",
    "safetySettings",
    "systemInstruction",
    "tools",
    "toolConfig",
    "cachedContent",
}
CONTENT_FIELDS = {"role", "parts"}
PART_FIELDS = {"text", "inlineData", "fileData"}
BLOB_FIELDS = {"mimeType", "data"}
GENERATION_CONFIG_FIELDS = {
    "responseModalities",
    "imageConfig",
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "seed",
    "stopSequences",
    "responseMimeType",
}
IMAGE_CONFIG_FIELDS = {"aspectRatio", "imageSize"}


class InvalidRequest(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: str = "INVALID_ARGUMENT",
        code: int = 400,
        details: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message, self.status, self.code, self.details = message, status, code, details


def error_response(
    code: int,
    status: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=code, headers=headers)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _fields(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    """Normalise snake_case names to camelCase and refuse unknown names, as protobuf JSON does."""
    if not isinstance(obj, dict):
        raise InvalidRequest(f"Invalid JSON payload received. Expected an object at '{where}'.")
    out: dict[str, Any] = {}
    for name, value in obj.items():
        camel = _camel(name)
        if camel not in allowed:
            location = f" at '{where}'" if where else ""
            raise InvalidRequest(f'Invalid JSON payload received. Unknown name "{name}"{location}: Cannot find field.')
        out[camel] = value
    return out


class FakeGemini(FakeService):
    def __init__(self, api_key: str = "AIzaFakeGeminiKey0000") -> None:
        super().__init__(api_key)
        self.app = Starlette(
            routes=[
                Route("/v1beta/models", self._list, methods=["GET"]),
                Route("/v1beta/models/{target}", self._endpoint, methods=["POST"]),
            ]
        )
        # Draft images (parts marked "thought": true) a thinking model sends before the final one.
        self.thought_images = 0
        # models.list answers at most this many per page (the real cap is 1000; small here so
        # that paging is exercised), with nextPageToken to continue.
        self.page_cap = 3

    async def _list(self, request: Request) -> Response:
        recorded = await record(request)
        self.requests.append(recorded)
        refused = self._refuse_key(recorded)
        if refused is not None:
            return refused
        fault = self.next_fault()
        if fault is not None:
            return self._fault_response(fault)
        size = min(int(recorded.query.get("pageSize") or 50), self.page_cap)
        start = int(recorded.query.get("pageToken") or 0)
        page = LISTED_MODELS[start : start + size]
        body: dict[str, Any] = {
            "models": [
                {
                    "name": f"models/{model_id}",
                    "version": "001",
                    "displayName": label,
                    "inputTokenLimit": 32768,
                    "outputTokenLimit": 32768,
                    "supportedGenerationMethods": list(methods),
                }
                for model_id, label, methods in page
            ]
        }
        if start + size < len(LISTED_MODELS):
            body["nextPageToken"] = str(start + size)
        return JSONResponse(body)

    async def _endpoint(self, request: Request) -> Response:
        recorded = await record(request)
        self.requests.append(recorded)
        refused = self._refuse_key(recorded)
        if refused is not None:
            return refused
        return await self._generate_endpoint(request, recorded)

    def _refuse_key(self, recorded: RecordedRequest) -> Response | None:
        """The real refusal of a missing or wrong key; None when the key is right."""
        presented = recorded.headers.get("x-goog-api-key") or recorded.query.get("key")
        if not presented:
            return error_response(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established identity). "
                "Please use API Key or other form of API consumer identity to call this API.",
            )
        if not self.accepts(presented):
            return error_response(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "API_KEY_INVALID",
                        "domain": "googleapis.com",
                        "metadata": {"service": "generativelanguage.googleapis.com"},
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                        "locale": "en-US",
                        "message": "API key not valid. Please pass a valid API key.",
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.DebugInfo",
                        "detail": f"Invalid API key: {presented}",
                    },
                ],
            )
        return None

    async def _generate_endpoint(self, request: Request, recorded: RecordedRequest) -> Response:
        target = request.path_params["target"]
        model, _, method = target.partition(":")
        if method != "generateContent":
            return error_response(404, "NOT_FOUND", f"Method {method or '(none)'} not found.")
        if model not in MODELS:
            return error_response(
                404,
                "NOT_FOUND",
                f"models/{model} is not found for API version v1beta, or is not supported for "
                "generateContent. Call ListModels to see the list of available models and their "
                "supported methods.",
            )

        fault = self.next_fault()
        await self.delay(fault)
        if fault is not None and fault.kind != "slow":
            return self._fault_response(fault)
        try:
            response = self._generate(model, recorded)
        except InvalidRequest as exc:
            return error_response(exc.code, exc.status, exc.message, exc.details)
        self.completed += 1
        return response

    def _fault_response(self, fault: Fault) -> Response:
        if fault.kind in ("rate_limit", "quota", "daily_quota"):
            per = "Day" if fault.kind == "daily_quota" else "Minute"
            details: list[dict[str, Any]] = [
                {
                    "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                    "violations": [
                        {
                            "quotaMetric": ("generativelanguage.googleapis.com/generate_content_free_tier_requests"),
                            "quotaId": f"GenerateRequestsPer{per}PerProjectPerModel-FreeTier",
                            "quotaValue": "10",
                        }
                    ],
                },
                {
                    "@type": "type.googleapis.com/google.rpc.Help",
                    "links": [
                        {
                            "description": "Learn more about Gemini API quotas",
                            "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                        }
                    ],
                },
            ]
            if fault.retry_after is not None:
                details.append(
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{fault.retry_after:g}s",
                    }
                )
            headers = {}
            if fault.options.get("header", False) and fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            return error_response(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan and billing details. For more "
                "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
                details,
                headers,
            )
        if fault.kind == "server_error":
            if fault.status == 503:
                return error_response(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
            return error_response(
                fault.status or 500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting",
            )
        if fault.kind == "content":
            if fault.options.get("where") == "prompt":
                return JSONResponse(
                    {
                        "promptFeedback": {"blockReason": fault.options.get("reason", "PROHIBITED_CONTENT")},
                        "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
                        "modelVersion": "gemini-3.1-flash-image",
                    }
                )
            return JSONResponse(
                {
                    "candidates": [{"finishReason": fault.options.get("reason", "IMAGE_SAFETY"), "index": 0}],
                    "usageMetadata": {"promptTokenCount": 12, "totalTokenCount": 12},
                    "modelVersion": "gemini-3.1-flash-image",
                }
            )
        if fault.kind == "malformed":
            shape = fault.options.get("shape", "truncated")
            if shape == "no_image":
                return JSONResponse(
                    {
                        "candidates": [
                            {
                                "content": {
                                    "role": "model",
                                    "parts": [{"text": "I can describe it, but here is no picture."}],
                                },
                                "finishReason": "STOP",
                                "index": 0,
                            }
                        ]
                    }
                )
            if shape == "bad_base64":
                return JSONResponse(
                    {
                        "candidates": [
                            {
                                "content": {
                                    "role": "model",
                                    "parts": [{"inlineData": {"mimeType": "image/png", "data": "@@not base64@@"}}],
                                },
                                "finishReason": "STOP",
                                "index": 0,
                            }
                        ]
                    }
                )
            return Response(
                '{"candidates": [{"content": {"parts": [{"inlineData": {"mimeType": "ima',
                media_type="application/json",
            )
        raise AssertionError(f"fake Gemini cannot play fault {fault.kind!r}")

    def _generate(self, model: str, recorded: RecordedRequest) -> Response:
        if recorded.json is None:
            raise InvalidRequest("Invalid JSON payload received. Unexpected token.")
        body = _fields(recorded.json, REQUEST_FIELDS, "")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise InvalidRequest("* GenerateContentRequest.contents: contents is not specified")
        texts: list[str] = []
        inputs: list[Image.Image] = []
        for index, content in enumerate(contents):
            content = _fields(content, CONTENT_FIELDS, f"contents[{index}]")
            if content.get("role", "user") not in ("user", "model"):
                raise InvalidRequest(f"Please use a valid role: user, model. (contents[{index}])")
            for part_index, part in enumerate(content.get("parts") or []):
                part = _fields(part, PART_FIELDS, f"contents[{index}].parts[{part_index}]")
                if "text" in part:
                    texts.append(str(part["text"]))
                if "inlineData" in part:
                    blob = _fields(
                        part["inlineData"], BLOB_FIELDS, f"contents[{index}].parts[{part_index}].inline_data"
                    )
                    inputs.append(_decode_input(blob))
        prompt = " ".join(texts).strip()
        if not prompt and not inputs:
            raise InvalidRequest("* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.")

        config = _fields(body.get("generationConfig") or {}, GENERATION_CONFIG_FIELDS, "generation_config")
        modalities = config.get("responseModalities") or ["TEXT"]
        if any(m not in ("TEXT", "IMAGE", "AUDIO") for m in modalities):
            raise InvalidRequest("Invalid value at 'generation_config.response_modalities'")
        if "IMAGE" not in modalities:
            raise InvalidRequest("Model does not support the requested response modalities: text")
        image_config = _fields(config.get("imageConfig") or {}, IMAGE_CONFIG_FIELDS, "generation_config.image_config")
        ratio = image_config.get("aspectRatio")
        if ratio is not None and ratio not in ASPECT_RATIOS:
            raise InvalidRequest(f"Unsupported aspect ratio: {ratio}. Supported: {', '.join(ASPECT_RATIOS)}")
        if "imageSize" in image_config:
            if not model.startswith("gemini-3"):
                raise InvalidRequest("Image size is not supported for this model.")
            if image_config["imageSize"] not in IMAGE_SIZES:
                raise InvalidRequest("Unsupported image size; use 1K, 2K or 4K.")

        colour = colour_for(prompt)
        if inputs and ratio is None:
            source = inputs[0].convert("RGB")
            output = Image.blend(source, Image.new("RGB", source.size, colour), 0.5)
        else:
            output = Image.new("RGB", ASPECT_RATIOS[ratio or "1:1"], colour)
        data = base64.b64encode(png_bytes(output)).decode()
        prompt_tokens = len(prompt.split()) + TOKENS_PER_INPUT_IMAGE * len(inputs)
        parts: list[dict[str, Any]] = []
        for draft in range(self.thought_images):
            # Drafts differ from the final image (inverted colour) so a test can tell them apart.
            sketch = Image.new("RGB", output.size, tuple(255 - c for c in colour))
            parts.append({"text": f"Sketching the composition, draft {draft + 1}.", "thought": True})
            draft_data = base64.b64encode(png_bytes(sketch)).decode()
            parts.append({"inlineData": {"mimeType": "image/png", "data": draft_data}, "thought": True})
        if "TEXT" in modalities:
            parts.append({"text": "Here is the image you asked for."})
        parts.append({"inlineData": {"mimeType": "image/png", "data": data}})
        return JSONResponse(
            {
                "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": TOKENS_PER_OUTPUT_IMAGE,
                    "totalTokenCount": prompt_tokens + TOKENS_PER_OUTPUT_IMAGE,
                },
                "modelVersion": model,
                "responseId": "fake-response",
            }
        )


def _decode_input(blob: dict[str, Any]) -> Image.Image:
    mime = blob.get("mimeType")
    if mime not in ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"):
        raise InvalidRequest(f"Unsupported MIME type: {mime}")
    try:
        raw = base64.b64decode(str(blob.get("data", "")), validate=True)
        image = Image.open(io.BytesIO(raw))
        image.load()
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            "Invalid value at 'contents.parts.inline_data.data' (TYPE_BYTES), Base64 decoding failed"
        ) from None
    except (UnidentifiedImageError, OSError):
        raise InvalidRequest(
            "Unable to process input image. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting"
        ) from None
    return image


def gemini_provider(
    fake: FakeGemini, client: httpx.AsyncClient | None = None, *, api_key: str | None = None, **options: Any
) -> GeminiProvider:
    """A GeminiProvider whose only network is the fake; api_key defaults to the one the fake accepts."""
    key = fake.api_key if api_key is None else api_key
    return GeminiProvider(key, client=client or client_for(fake.app, BASE_URL), **options)
