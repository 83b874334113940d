"""Google Gemini image adapter (generateContent on the Gemini API).

Wire format (https://ai.google.dev/api/generate-content):
- POST {base}/v1beta/models/{model}:generateContent with the key in `x-goog-api-key` (never in the
  query string, where it would end up in access logs);
- the body is `contents[].parts[]` holding the prompt text and `inline_data` images (the source
  image for img2img, then any reference images), plus `generationConfig.responseModalities` and
  `generationConfig.imageConfig.aspectRatio`;
- images come back as `candidates[].content.parts[].inlineData {mimeType, data}`; thinking models
  first send draft images in parts marked `"thought": true`, and the final image comes last;
- GET {base}/v1beta/models (pageSize, nextPageToken) lists `models[] {name: "models/<id>",
  displayName, supportedGenerationMethods}`; models answering generateContent whose id is of a
  known image family (MODEL_FAMILIES) are offered;
- a refused prompt has `promptFeedback.blockReason`; a refused output has a candidate
  `finishReason` such as SAFETY, PROHIBITED_CONTENT or IMAGE_SAFETY;
- errors are `{"error": {"code", "message", "status", "details"}}`; 429 carries a
  `google.rpc.RetryInfo` detail with `retryDelay`, and a `google.rpc.QuotaFailure` detail whose
  `quotaId` says PerDay when the daily quota (not a per-minute one) is used up. A wrong key is
  400 INVALID_ARGUMENT with the ErrorInfo reason API_KEY_INVALID; a missing key is 403 PERMISSION_DENIED.

One image per call, so a batch of n is n calls. Seeds, negative prompts, strength and masks are not
part of the image API (edits are described in words), so capabilities say so.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from PIL import Image

from imagestudio.kit.answers import google_retry_hint
from imagestudio.models.enums import GenerationType
from imagestudio.providers.base import (
    CancellationToken,
    ContentRejectedError,
    GeneratedImage,
    GenerationRequest,
    ModelInfo,
    PermanentError,
    ProviderCapabilities,
    ProviderError,
)
from imagestudio.providers.catalog import ModelFamily
from imagestudio.providers.hosted import HostedImageByImage, ImageCall, error_object, nearest_aspect_ratio, short_text
from imagestudio.providers.wire import (
    AUTH_FAILED,
    BAD_RESPONSE,
    QUOTA_EXCEEDED,
    decode_base64_image,
    error_for_status,
    json_or_none,
    png_base64,
)

T = GenerationType

# Today's image models (generally available since May 2026). gemini-2.5-flash-image was shut down
# in October 2026 and the -preview ids of the Gemini 3 image models in June 2026.
FLASH_IMAGE = "gemini-3.1-flash-image"
PRO_IMAGE = "gemini-3-pro-image"

ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
IMAGE_TYPES = frozenset({T.text2img, T.img2img})

# Gemini image models by family. Models of the Gemini 3 generation and later also take
# `imageConfig.imageSize` (1K, 2K, 4K); Gemini 2.5 renders about one megapixel whatever is asked.
GEMINI_IMAGE = ModelInfo("gemini-image", "Gemini image", IMAGE_TYPES, aspect_ratios=ASPECT_RATIOS)
SIZED_FAMILY = r"gemini-([3-9]|[1-9][0-9])[\w.]*-(flash|pro)[\w.-]*-image[\w.-]*"
MODEL_FAMILIES = (ModelFamily(r"gemini-[\w.-]*-image[\w.-]*", GEMINI_IMAGE),)

# The models offered before the service has been asked (retired ids are not among them).
CAPABILITIES = ProviderCapabilities(
    types=IMAGE_TYPES,
    models=(
        ModelInfo(FLASH_IMAGE, "Gemini 3.1 Flash Image", IMAGE_TYPES, aspect_ratios=ASPECT_RATIOS),
        ModelInfo(PRO_IMAGE, "Gemini 3 Pro Image", IMAGE_TYPES, aspect_ratios=ASPECT_RATIOS),
    ),
    default_model=FLASH_IMAGE,
    max_images=10,
    min_size=64,
    max_size=4096,
    size_multiple=1,  # only the aspect ratio is sent
    upscale_factors=(2,),  # unused: upscale is not offered
    honours_seed=False,
    honours_negative_prompt=False,
    honours_strength=False,
    supports_mask=False,
)
# models.list answers at most this many per page.
MODELS_PAGE_SIZE = 1000
# A quota whose id names a day (e.g. GenerateRequestsPerDayPerProjectPerModel) does not refill
# within a retry's backoff, unlike the per-minute ones.
DAILY_QUOTA_MARK = "PerDay"

# Reasons that mean the prompt or the picture was refused on content grounds.
CONTENT_BLOCK_REASONS = frozenset(
    {
        "SAFETY",
        "OTHER",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "IMAGE_SAFETY",
    }
)
CONTENT_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
_RETRIABLE_STATUSES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED", "ABORTED"})
_AUTH_STATUSES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})
_USAGE_COUNTERS = ("promptTokenCount", "candidatesTokenCount", "totalTokenCount")


class GeminiProvider(HostedImageByImage):
    name = "gemini"
    kind = "gemini"
    capability_table = CAPABILITIES
    model_families = MODEL_FAMILIES
    models_path = "/v1beta/models"
    models_setting = "IMAGESTUDIO_GEMINI_MODELS"
    service_label = "Gemini API"
    key_env_var = "IMAGESTUDIO_GEMINI_API_KEY"
    default_base_url = "https://generativelanguage.googleapis.com"
    default_timeout = 120.0

    def _image_call(self, request: GenerationRequest, model: str, key: str, cancel: CancellationToken) -> ImageCall:
        """One generateContent call per image, each handed over with the tokens its call used."""
        body = _request_body(request, model)
        url = f"{self._base_url}/v1beta/models/{model}:generateContent"
        headers = {"x-goog-api-key": key}

        async def call(index: int) -> tuple[GeneratedImage, dict[str, Any]]:
            response = await self._send("POST", url, cancel=cancel, headers=headers, json=body)
            if response.status_code != 200:
                raise self._error_from(response)
            return self._parse(response)

        return call

    async def _list_models(self, key: str, cancel: CancellationToken) -> list[tuple[str, str | None]]:
        """Every model that answers generateContent, following nextPageToken to the last page."""
        found: list[tuple[str, str | None]] = []
        params: dict[str, str | int] = {"pageSize": MODELS_PAGE_SIZE}
        while True:
            response = await self._send(
                "GET",
                f"{self._base_url}{self.models_path}",
                cancel=cancel,
                headers={"x-goog-api-key": key},
                params=params,
            )
            if response.status_code != 200:
                raise self._error_from(response)
            body = json_or_none(response)
            models = body.get("models") if isinstance(body, dict) else None
            if not isinstance(models, list):
                raise PermanentError("Gemini listed no models (no `models` array)", code=BAD_RESPONSE)
            for model in models:
                if not isinstance(model, dict) or "generateContent" not in (
                    model.get("supportedGenerationMethods") or ()
                ):
                    continue
                name = str(model.get("name") or "").removeprefix("models/")
                label = model.get("displayName")
                if name:
                    found.append((name, label if isinstance(label, str) and label else None))
            token = body.get("nextPageToken")
            if not token:
                return found
            params = {"pageSize": MODELS_PAGE_SIZE, "pageToken": str(token)}

    # ---- responses ----

    def _parse(self, response: httpx.Response) -> tuple[GeneratedImage, dict[str, int]]:
        body = json_or_none(response)
        if not isinstance(body, dict):
            raise PermanentError(
                f"Gemini answered something that is not JSON ({short_text(response, 80)!r})",
                code=BAD_RESPONSE,
            )
        candidate = _accepted_candidate(body)
        image, texts = _image_and_texts(candidate)
        if image is None:
            finish = str(candidate.get("finishReason") or "")
            said = " ".join(texts).strip()
            detail = f": {said[:200]}" if said else ""
            raise PermanentError(
                f"Gemini returned no image (finishReason {finish or 'missing'}){detail}", code=BAD_RESPONSE
            )
        return GeneratedImage(image=image), _usage(body)

    def _error_from(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        error, message = error_object(response)
        grpc_status = str(error.get("status") or "")
        details = error.get("details") if isinstance(error.get("details"), list) else []
        reasons = {d.get("reason") for d in details if isinstance(d, dict)}
        text = self._redact(f"Gemini {status}{f' {grpc_status}' if grpc_status else ''}: {message}")

        if "API_KEY_INVALID" in reasons or grpc_status in _AUTH_STATUSES or status in (401, 403):
            return PermanentError(text, code=AUTH_FAILED)
        if grpc_status == "RESOURCE_EXHAUSTED" and _daily_quota_exhausted(details):
            return PermanentError(f"{text} (the daily quota is used up; it refills tomorrow)", code=QUOTA_EXCEEDED)
        if grpc_status == "RESOURCE_EXHAUSTED":
            status = 429  # quota and rate limits share this status; both pass with time
        elif grpc_status in _RETRIABLE_STATUSES:
            status = max(status, 503)  # a transient server state whatever HTTP status carried it
        return error_for_status(status, text, retry_after=google_retry_hint(response.headers, details))


def _accepted_candidate(body: dict[str, Any]) -> dict[str, Any]:
    """The first candidate, once neither the prompt nor the output was refused on content grounds."""
    feedback = body.get("promptFeedback") or {}
    block = feedback.get("blockReason") if isinstance(feedback, dict) else None
    if block:
        raise ContentRejectedError(f"Gemini refused the prompt ({block})")
    candidates = body.get("candidates")
    if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
        raise PermanentError("Gemini returned no candidates", code=BAD_RESPONSE)
    candidate = candidates[0]
    finish = str(candidate.get("finishReason") or "")
    if finish in CONTENT_FINISH_REASONS:
        raise ContentRejectedError(f"Gemini refused to draw this ({finish})")
    return candidate


def _daily_quota_exhausted(details: list[Any]) -> bool:
    """Whether a google.rpc.QuotaFailure detail names a per-day quota."""
    for detail in details:
        if not isinstance(detail, dict) or not str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            continue
        for violation in detail.get("violations") or ():
            if isinstance(violation, dict) and DAILY_QUOTA_MARK in str(violation.get("quotaId") or ""):
                return True
    return False


def _image_and_texts(candidate: dict[str, Any]) -> tuple[Image.Image | None, list[str]]:
    """The candidate's final image, and whatever the model said in words beside it.

    Thinking models send interim drafts as parts marked `"thought": true`; those are skipped, and
    of the remaining images the last one is the answer.
    """
    content = candidate.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts: list[str] = []
    image = None
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict) or part.get("thought") is True:
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        inline = part.get("inlineData") or part.get("inline_data")
        if isinstance(inline, dict):
            image = _decode_inline(inline) or image
    return image, texts


def _usage(body: dict[str, Any]) -> dict[str, int]:
    usage_meta = body.get("usageMetadata")
    if not isinstance(usage_meta, dict):
        return {}
    return {name: int(usage_meta[name]) for name in _USAGE_COUNTERS if isinstance(usage_meta.get(name), int)}


def _request_body(request: GenerationRequest, model: str) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": request.prompt}]
    sources = [img for img in (request.init_image, *request.reference_images) if img is not None]
    for image in sources:
        parts.append({"inline_data": {"mime_type": "image/png", "data": png_base64(image)}})

    generation_config: dict[str, Any] = {"responseModalities": ["TEXT", "IMAGE"]}
    # An edit keeps the source's shape unless a ratio was asked for explicitly.
    if request.type == T.text2img or request.aspect_ratio:
        image_config: dict[str, str] = {"aspectRatio": _ratio(request)}
        if re.fullmatch(SIZED_FAMILY, model):
            image_config["imageSize"] = _pro_image_size(max(request.width, request.height))
        generation_config["imageConfig"] = image_config
    return {"contents": [{"role": "user", "parts": parts}], "generationConfig": generation_config}


def _ratio(request: GenerationRequest) -> str:
    if request.aspect_ratio in ASPECT_RATIOS:
        return request.aspect_ratio
    return nearest_aspect_ratio(request.width, request.height, ASPECT_RATIOS)


def _pro_image_size(longest_side: int) -> str:
    """Gemini 3 Pro Image renders at 1K, 2K or 4K; pick the smallest that covers the request."""
    if longest_side <= 1024:
        return "1K"
    if longest_side <= 2048:
        return "2K"
    return "4K"


def _decode_inline(inline: dict[str, Any]) -> Image.Image | None:
    mime = str(inline.get("mimeType") or inline.get("mime_type") or "")
    if not mime.startswith("image/"):
        return None
    return decode_base64_image(inline.get("data"), source="Gemini")
