"""OpenAI Images API adapter: /images/generations and /images/edits for the gpt-image models.

Wire format (https://platform.openai.com/docs/api-reference/images, checked November 2026):
- generations take JSON; edits take multipart/form-data with up to 16 `image[]` parts;
- gpt-image models answer `b64_json` and reject `response_format`; servers that only speak the
  same wire format may answer `url` instead, which is fetched (without the key);
- options: `quality` (low|medium|high|auto), `background` (transparent|opaque|auto),
  `output_format` (png|jpeg|webp), `output_compression` (0-100, jpeg/webp), `moderation`
  (auto|low) and, on edits, `input_fidelity` (high|low);
- edit masks are RGBA PNGs whose fully transparent pixels mark the area to repaint;
- GET /models lists every model of the account (`{"object": "list", "data": [{"id", ...}]}`); the
  ones of a known image family (MODEL_FAMILIES) are offered. DALL·E 2 and 3 are retired;
- errors are `{"error": {"message", "type", "param", "code"}}`; safety refusals carry the code
  `moderation_blocked` (or `content_policy_violation` from older servers).

Seeds are not part of the API, so `honours_seed` is False. Token usage goes into
`GenerationResult.usage`; money is computed from it elsewhere, by a price table.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from PIL import Image

from imagestudio.models.enums import GenerationType
from imagestudio.providers.base import (
    CancellationToken,
    ContentRejectedError,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    PermanentError,
    ProgressCallback,
    ProviderCapabilities,
    ProviderError,
)
from imagestudio.providers.catalog import ModelFamily
from imagestudio.providers.hosted import HostedProvider, error_object, short_text
from imagestudio.providers.wire import (
    BAD_RESPONSE,
    QUOTA_EXCEEDED,
    UNSUPPORTED,
    FormPart,
    decode_base64_image,
    decode_image,
    error_for_status,
    form_field,
    json_or_none,
    parse_duration,
    png_part,
    retry_after_seconds,
)

GPT_IMAGE_1 = "gpt-image-1"
GPT_IMAGE_1_MINI = "gpt-image-1-mini"

T = GenerationType

# Every gpt-image model renders these sizes (and "auto", which the studio never sends).
GPT_IMAGE_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))
GPT_IMAGE_TYPES = frozenset({T.text2img, T.img2img, T.inpaint})

# What each family of OpenAI image models can do. DALL·E 2 and 3 are gone from the API, so a
# listing that still names them offers nothing for them.
MODEL_FAMILIES = (
    ModelFamily(r"gpt-image-[0-9][\w.-]*", ModelInfo("gpt-image", "GPT Image", GPT_IMAGE_TYPES, 10, GPT_IMAGE_SIZES)),
)

# Options a request may carry in `params` (request.extra), with the values the API accepts.
CHOICES: dict[str, tuple[str, ...]] = {
    "quality": ("low", "medium", "high", "auto"),
    "background": ("transparent", "opaque", "auto"),
    "output_format": ("png", "jpeg", "webp"),
    "moderation": ("auto", "low"),
    "input_fidelity": ("high", "low"),
}

# The models offered before the service has been asked, and the labels of the ones known here.
CAPABILITIES = ProviderCapabilities(
    types=GPT_IMAGE_TYPES,
    models=(
        ModelInfo(GPT_IMAGE_1, "GPT Image 1", GPT_IMAGE_TYPES, 10, GPT_IMAGE_SIZES),
        ModelInfo(GPT_IMAGE_1_MINI, "GPT Image 1 mini", GPT_IMAGE_TYPES, 10, GPT_IMAGE_SIZES),
    ),
    default_model=GPT_IMAGE_1,
    max_images=10,
    min_size=1024,
    max_size=1536,
    size_multiple=8,
    upscale_factors=(2,),  # unused: upscale is not offered
    honours_seed=False,
    honours_negative_prompt=False,
    honours_strength=False,
    supports_mask=True,
    # Checked when a request is made; the rules between options (edits only, formats) when it runs.
    options=tuple(CHOICES.items()),
)
# Only /images/edits takes input_fidelity; output_compression applies to jpeg and webp.
EDIT_ONLY_OPTIONS = frozenset({"input_fidelity"})
COMPRESSED_FORMATS = ("jpeg", "webp")
# The mini models ignore input images' fine detail and refuse input_fidelity.
NO_INPUT_FIDELITY = r"gpt-image-[\w.]+-mini"
# gpt-image models accept up to 16 input images on /images/edits.
MAX_EDIT_IMAGES = 16

_CONTENT_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


class OpenAIProvider(HostedProvider):
    name = "openai"
    kind = "openai"
    capability_table = CAPABILITIES
    model_families = MODEL_FAMILIES
    models_path = "/models"
    models_setting = "IMAGESTUDIO_OPENAI_MODELS"
    service_label = "OpenAI API"
    key_env_var = "IMAGESTUDIO_OPENAI_API_KEY"
    default_base_url = "https://api.openai.com/v1"
    default_timeout = 180.0  # gpt-image-1 at high quality takes well over a minute

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        key, model = self._begin(request)
        uses_edits = request.type != T.text2img or bool(request.reference_images)
        options = _options(model, request.extra, edits=uses_edits)
        progress(0, 1)
        headers = {"Authorization": f"Bearer {key}"}
        size = f"{request.width}x{request.height}"

        if not uses_edits:
            body: dict[str, Any] = {
                "model": model,
                "prompt": request.prompt,
                "n": request.num_images,
                "size": size,
            }
            body.update(options)
            response = await self._send(
                "POST",
                f"{self._base_url}/images/generations",
                cancel=cancel,
                headers=headers,
                json=body,
            )
        else:
            # img2img, inpaint, and prompts with reference images all go through edits.
            response = await self._send(
                "POST",
                f"{self._base_url}/images/edits",
                cancel=cancel,
                headers=headers,
                files=_edit_form(request, model, size, options),
            )

        if response.status_code != 200:
            raise self._error_from(response)
        result = await self._parse_images(response, model, cancel)
        progress(1, 1)
        return self._priced(result)

    async def _list_models(self, key: str, cancel: CancellationToken) -> list[tuple[str, str | None]]:
        response = await self._send(
            "GET", f"{self._base_url}{self.models_path}", cancel=cancel, headers={"Authorization": f"Bearer {key}"}
        )
        if response.status_code != 200:
            raise self._error_from(response)
        body = json_or_none(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise PermanentError("OpenAI listed no models (no `data` array)", code=BAD_RESPONSE)
        return [(item["id"], None) for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]

    # ---- responses ----

    async def _parse_images(self, response: httpx.Response, model: str, cancel: CancellationToken) -> GenerationResult:
        body = json_or_none(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            raise PermanentError(
                self._redact(f"OpenAI returned no images ({short_text(response, 120)!r})"), code=BAD_RESPONSE
            )
        images: list[GeneratedImage] = []
        for item in data:
            item = item if isinstance(item, dict) else {}
            if item.get("b64_json") is None and isinstance(item.get("url"), str):
                # Compatible servers may answer with links instead of base64.
                images.append(GeneratedImage(image=await self._download(item["url"], cancel)))
            else:
                images.append(GeneratedImage(image=decode_base64_image(item.get("b64_json"), source="OpenAI")))
        first = data[0] if isinstance(data[0], dict) else {}
        revised = first.get("revised_prompt")
        usage = body.get("usage")
        return GenerationResult(
            images=images,
            model=model,
            revised_prompt=revised if isinstance(revised, str) and revised else None,
            usage=usage if isinstance(usage, dict) else {},
        )

    async def _download(self, url: str, cancel: CancellationToken) -> Image.Image:
        """Fetch an image link from an answer. The key is not sent: the link may be on another host."""
        if httpx.URL(url).scheme not in ("http", "https"):
            raise PermanentError("OpenAI answered with an image link that is not http(s)", code=BAD_RESPONSE)
        response = await self._send("GET", url, cancel=cancel)
        if response.status_code != 200:
            raise error_for_status(response.status_code, f"OpenAI image link answered HTTP {response.status_code}")
        return decode_image(response.content, source="OpenAI image link")

    def _error_from(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        error, message = error_object(response)
        code = error.get("code") or ""
        error_type = error.get("type") or ""
        text = self._redact(f"OpenAI {status}: {message}")

        if code in _CONTENT_CODES:
            return ContentRejectedError(text)
        if code in _QUOTA_CODES or error_type in _QUOTA_CODES:
            return PermanentError(text, code=QUOTA_EXCEEDED)
        return error_for_status(status, text, retry_after=_retry_hint(response.headers))


def _retry_hint(headers: httpx.Headers) -> float | None:
    """Retry-After when sent; otherwise the reset time of the exhausted request budget."""
    hint = retry_after_seconds(headers)
    if hint is not None:
        return hint
    return parse_duration(headers.get("x-ratelimit-reset-requests"))


def option_problem(model: str, extra: Any, *, edits: bool) -> tuple[str, str] | None:
    """(option, why) for the first option in params the API would refuse; None when all are fine."""
    for option, allowed in CHOICES.items():
        value = extra.get(option)
        if value is None:
            continue
        if option in EDIT_ONLY_OPTIONS and not edits:
            return option, f"{option} applies only to edits (img2img, inpaint, reference images)"
        if option == "input_fidelity" and re.fullmatch(NO_INPUT_FIDELITY, model):
            return option, f"{model} does not take input_fidelity"
        if value not in allowed:
            return option, f"{option} must be one of {', '.join(allowed)}"
    if extra.get("background") == "transparent" and extra.get("output_format") == "jpeg":
        return "background", "a transparent background needs output_format png or webp"
    compression = extra.get("output_compression")
    if compression is not None:
        if extra.get("output_format") not in COMPRESSED_FORMATS:
            return "output_compression", "output_compression needs output_format jpeg or webp"
        if isinstance(compression, bool) or not isinstance(compression, int) or not 0 <= compression <= 100:
            return "output_compression", "output_compression must be a whole number from 0 to 100"
    return None


def _options(model: str, extra: Any, *, edits: bool) -> dict[str, str | int]:
    """The gpt-image options from request.extra, as the API names them, after checking them."""
    problem = option_problem(model, extra, edits=edits)
    if problem is not None:
        raise PermanentError(problem[1], code=UNSUPPORTED)
    names = (*CHOICES, "output_compression")
    return {name: extra[name] for name in names if extra.get(name) is not None}


# ---- multipart bodies ----


def _edit_form(request: GenerationRequest, model: str, size: str, options: dict[str, str | int]) -> list[FormPart]:
    parts: list[FormPart] = []
    sources = [img for img in (request.init_image, *request.reference_images) if img is not None]
    if len(sources) > MAX_EDIT_IMAGES:
        raise PermanentError(f"{model} accepts at most {MAX_EDIT_IMAGES} input images", code=UNSUPPORTED)
    for index, image in enumerate(sources):
        parts.append(png_part("image[]", image, filename=f"image_{index}.png"))
    if request.mask_image is not None and request.init_image is not None:
        # The mask applies to the first image and must match its dimensions.
        parts.append(png_part("mask", _openai_mask(request.mask_image, request.init_image.size)))
    parts += [
        form_field("prompt", request.prompt),
        form_field("model", model),
        form_field("n", request.num_images),
        form_field("size", size),
    ]
    parts += [form_field(name, value) for name, value in options.items()]
    return parts


def _openai_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Our masks are "L" with white = repaint; OpenAI wants RGBA with alpha 0 where to repaint."""
    grey = mask.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.NEAREST)
    alpha = grey.point(lambda value: 0 if value >= 128 else 255)
    rgba = Image.new("RGBA", size, (0, 0, 0, 255))
    rgba.putalpha(alpha)
    return rgba
