"""OpenAI Images API adapter: /images/generations, /images/edits and /images/variations.

Wire format (https://platform.openai.com/docs/api-reference/images):
- generations take JSON; edits and variations take multipart/form-data;
- gpt-image-1 always answers base64 and rejects `response_format`; the DALL·E models answer URLs
  unless asked for `response_format=b64_json`;
- edit masks are RGBA PNGs whose fully transparent pixels mark the area to repaint;
- errors are `{"error": {"message", "type", "param", "code"}}`; safety refusals carry the codes
  `content_policy_violation` (DALL·E) or `moderation_blocked` (gpt-image-1).

Seeds are not part of the API, so `honours_seed` is False. Token usage (gpt-image-1) goes into
`GenerationResult.usage`; `cost` stays None because prices are not published in the API.
"""

from __future__ import annotations

from typing import Any

import httpx
from PIL import Image, ImageOps

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
from imagestudio.providers.hosted import HostedProvider, error_object, short_text
from imagestudio.providers.wire import (
    BAD_RESPONSE,
    QUOTA_EXCEEDED,
    UNSUPPORTED,
    FormPart,
    decode_base64_image,
    error_for_status,
    form_field,
    json_or_none,
    parse_duration,
    png_part,
    retry_after_seconds,
)

GPT_IMAGE_1 = "gpt-image-1"
DALL_E_3 = "dall-e-3"
DALL_E_2 = "dall-e-2"

T = GenerationType

# The exact sizes each model renders.
SIZES = {
    GPT_IMAGE_1: ((1024, 1024), (1536, 1024), (1024, 1536)),
    DALL_E_3: ((1024, 1024), (1792, 1024), (1024, 1792)),
    DALL_E_2: ((256, 256), (512, 512), (1024, 1024)),
}
# Each model: id, label, types, images per request, sizes.
_MODELS = (
    ModelInfo(GPT_IMAGE_1, "GPT Image 1", frozenset({T.text2img, T.img2img, T.inpaint}), 10, SIZES[GPT_IMAGE_1]),
    ModelInfo(DALL_E_3, "DALL·E 3", frozenset({T.text2img}), 1, SIZES[DALL_E_3]),
    ModelInfo(DALL_E_2, "DALL·E 2", frozenset({T.text2img, T.inpaint, T.variation}), 10, SIZES[DALL_E_2]),
)

CAPABILITIES = ProviderCapabilities(
    types=frozenset({T.text2img, T.img2img, T.inpaint, T.variation}),
    models=_MODELS,
    default_model=GPT_IMAGE_1,
    max_images=10,
    min_size=256,
    max_size=1792,
    size_multiple=8,
    upscale_factors=(2,),  # unused: upscale is not offered
    honours_seed=False,
    honours_negative_prompt=False,
    honours_strength=False,
    supports_mask=True,
)

# Accepted values of the `quality` option per model (request.extra["quality"]).
QUALITIES = {
    GPT_IMAGE_1: ("low", "medium", "high", "auto"),
    DALL_E_3: ("standard", "hd"),
    DALL_E_2: ("standard",),
}
DALL_E_3_STYLES = ("vivid", "natural")
# gpt-image-1 accepts up to 16 input images on /images/edits.
MAX_EDIT_IMAGES = 16

_CONTENT_CODES = frozenset({"content_policy_violation", "moderation_blocked"})
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


class OpenAIProvider(HostedProvider):
    name = "openai"
    kind = "openai"
    capability_table = CAPABILITIES
    service_label = "OpenAI API"
    key_env_var = "IMAGESTUDIO_OPENAI_API_KEY"
    default_base_url = "https://api.openai.com/v1"
    default_timeout = 180.0  # gpt-image-1 at high quality takes well over a minute

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        key, model = self._begin(request)
        options = _model_options(model, request.extra)
        progress(0, 1)
        headers = {"Authorization": f"Bearer {key}"}
        size = f"{request.width}x{request.height}"

        if request.type == T.variation:
            response = await self._send(
                "POST",
                f"{self._base_url}/images/variations",
                cancel=cancel,
                headers=headers,
                files=_variation_form(request, model, size),
            )
        elif request.type == T.text2img and not (model == GPT_IMAGE_1 and request.reference_images):
            body: dict[str, Any] = {
                "model": model,
                "prompt": request.prompt,
                "n": request.num_images,
                "size": size,
            }
            body.update(options)
            if model != GPT_IMAGE_1:
                body["response_format"] = "b64_json"
            response = await self._send(
                "POST",
                f"{self._base_url}/images/generations",
                cancel=cancel,
                headers=headers,
                json=body,
            )
        else:
            # img2img, inpaint, and gpt-image-1 prompts with reference images all go through edits.
            response = await self._send(
                "POST",
                f"{self._base_url}/images/edits",
                cancel=cancel,
                headers=headers,
                files=_edit_form(request, model, size, options),
            )

        if response.status_code != 200:
            raise self._error_from(response)
        result = self._parse_images(response, model)
        progress(1, 1)
        return result

    # ---- responses ----

    def _parse_images(self, response: httpx.Response, model: str) -> GenerationResult:
        body = json_or_none(response)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            raise PermanentError(
                self._redact(f"OpenAI returned no images ({short_text(response, 120)!r})"), code=BAD_RESPONSE
            )
        images: list[GeneratedImage] = []
        for item in data:
            encoded = item.get("b64_json") if isinstance(item, dict) else None
            images.append(GeneratedImage(image=decode_base64_image(encoded, source="OpenAI")))
        first = data[0] if isinstance(data[0], dict) else {}
        revised = first.get("revised_prompt")
        usage = body.get("usage")
        return GenerationResult(
            images=images,
            model=model,
            revised_prompt=revised if isinstance(revised, str) and revised else None,
            cost=None,  # the API reports tokens, not money; pricing is left to a price table
            usage=usage if isinstance(usage, dict) else {},
        )

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


def _model_options(model: str, extra: Any) -> dict[str, str]:
    """Validated per-model options from request.extra: quality (all models), style (dall-e-3)."""
    options: dict[str, str] = {}
    quality = extra.get("quality")
    if quality is not None:
        allowed = QUALITIES[model]
        if quality not in allowed:
            raise PermanentError(f"quality must be one of {', '.join(allowed)} for {model}", code=UNSUPPORTED)
        options["quality"] = str(quality)
    style = extra.get("style")
    if style is not None:
        if model != DALL_E_3 or style not in DALL_E_3_STYLES:
            raise PermanentError(
                f"style is only for {DALL_E_3} and must be one of {', '.join(DALL_E_3_STYLES)}",
                code=UNSUPPORTED,
            )
        options["style"] = str(style)
    return options


# ---- multipart bodies ----


def _edit_form(request: GenerationRequest, model: str, size: str, options: dict[str, str]) -> list[FormPart]:
    parts: list[FormPart] = []
    if model == DALL_E_2:
        # dall-e-2 takes one square RGBA PNG, and the mask must have the same dimensions.
        init = _square_rgba(request.init_image, request.width)
        parts.append(png_part("image", init))
        if request.mask_image is not None:
            mask = _openai_mask(request.mask_image, init.size, fit=True)
            parts.append(png_part("mask", mask))
        parts.append(form_field("response_format", "b64_json"))
    else:
        sources = [img for img in (request.init_image, *request.reference_images) if img is not None]
        if len(sources) > MAX_EDIT_IMAGES:
            raise PermanentError(f"{model} accepts at most {MAX_EDIT_IMAGES} input images", code=UNSUPPORTED)
        for index, image in enumerate(sources):
            parts.append(png_part("image[]", image, filename=f"image_{index}.png"))
        if request.mask_image is not None and request.init_image is not None:
            # The mask applies to the first image and must match its dimensions.
            mask = _openai_mask(request.mask_image, request.init_image.size, fit=False)
            parts.append(png_part("mask", mask))
    parts += [
        form_field("prompt", request.prompt),
        form_field("model", model),
        form_field("n", request.num_images),
        form_field("size", size),
    ]
    parts += [form_field(name, value) for name, value in options.items()]
    return parts


def _variation_form(request: GenerationRequest, model: str, size: str) -> list[FormPart]:
    image = _square_rgba(request.init_image, request.width)
    return [
        png_part("image", image),
        form_field("model", model),
        form_field("n", request.num_images),
        form_field("size", size),
        form_field("response_format", "b64_json"),
    ]


def _square_rgba(image: Image.Image | None, side: int) -> Image.Image:
    """dall-e-2 inputs must be square RGBA PNGs: centre-crop and scale to the output side."""
    if image is None:
        raise PermanentError("this request needs a source image", code=UNSUPPORTED)
    fitted = ImageOps.fit(image.convert("RGBA"), (side, side), method=Image.Resampling.LANCZOS)
    return fitted


def _openai_mask(mask: Image.Image, size: tuple[int, int], *, fit: bool) -> Image.Image:
    """Our masks are "L" with white = repaint; OpenAI wants RGBA with alpha 0 where to repaint."""
    grey = mask.convert("L")
    if grey.size != size:
        if fit:
            grey = ImageOps.fit(grey, size, method=Image.Resampling.NEAREST)
        else:
            grey = grey.resize(size, Image.Resampling.NEAREST)
    alpha = grey.point(lambda value: 0 if value >= 128 else 255)
    rgba = Image.new("RGBA", size, (0, 0, 0, 255))
    rgba.putalpha(alpha)
    return rgba
