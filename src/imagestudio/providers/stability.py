"""Stability AI adapter for the v2beta Stable Image REST API.

Wire format (https://platform.stability.ai/docs/api-reference):
- every call is multipart/form-data with `Authorization: Bearer <key>`;
- with `Accept: image/*` a success body is the image itself and the headers `finish-reason`
  (SUCCESS or CONTENT_FILTERED) and `seed` describe it;
- one image per request, so a batch of n is n requests (progress is reported per image);
- creative upscale is asynchronous: POST answers `{"id"}`, then GET /v2beta/results/{id}
  answers 202 while running and 200 with the image when done;
- errors are `{"id", "name", "errors": [...]}`; 403 `content_moderation` is a content refusal,
  402 means the account is out of credits, 429 means the rate limit (150 requests per 10 s)
  was hit and the caller is locked out for 60 s.

Output sizes are chosen by the service: from the aspect ratio for generation (about one megapixel,
so width and height only pick the ratio); four times each side for the fast upscaler; about four
megapixels in the source's shape for the conservative and creative upscalers.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
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
    RetriableError,
    UpscaleSpec,
)
from imagestudio.providers.catalog import ModelFamily
from imagestudio.providers.hosted import HostedImageByImage, ImageCall, nearest_aspect_ratio, short_text
from imagestudio.providers.wire import (
    BAD_RESPONSE,
    QUOTA_EXCEEDED,
    TIMED_OUT,
    UNSUPPORTED,
    FormPart,
    decode_image,
    error_for_status,
    form_field,
    json_or_none,
    png_part,
    retry_after_seconds,
)

T = GenerationType

ASPECT_RATIOS = ("16:9", "1:1", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
# Seeds run 0..4294967294; 0 asks the service to pick one (reported back in the `seed` header).
SEED_MODULUS = 4294967295
# After a 429 Stability locks the caller out for 60 seconds.
RATE_LIMIT_LOCKOUT = 60.0
DEFAULT_STRENGTH = 0.6

CORE = "stable-image-core"
ULTRA = "stable-image-ultra"
SD35_LARGE = "sd3.5-large"
SD35_LARGE_TURBO = "sd3.5-large-turbo"
SD35_MEDIUM = "sd3.5-medium"
INPAINT = "stable-image-inpaint"
UPSCALE_FAST = "upscale-fast"
UPSCALE_CONSERVATIVE = "upscale-conservative"
UPSCALE_CREATIVE = "upscale-creative"


@dataclass(frozen=True)
class _Upscaler:
    path: str
    needs_prompt: bool
    spec: UpscaleSpec


# From the API reference: what each upscaler takes and what it makes. Fast multiplies each side by
# 4; conservative and creative make about 4 megapixels in the source's shape (a 20x to 40x upscale
# for creative) from sources no longer than 2.5 to 1. Checked when a request is made.
FOUR_MEGAPIXELS = 4_194_304
_UPSCALERS = {
    UPSCALE_FAST: _Upscaler(
        "fast", False, UpscaleSpec(min_side=32, max_side=1536, min_pixels=1024, max_pixels=1_048_576)
    ),
    UPSCALE_CONSERVATIVE: _Upscaler(
        "conservative",
        True,
        UpscaleSpec(
            min_side=64, min_pixels=4096, max_pixels=9_437_184, max_ratio=2.5, output_pixels=FOUR_MEGAPIXELS
        ),
    ),
    UPSCALE_CREATIVE: _Upscaler(
        "creative",
        True,
        UpscaleSpec(
            min_side=64, min_pixels=4096, max_pixels=1_048_576, max_ratio=2.5, output_pixels=FOUR_MEGAPIXELS
        ),
    ),
}


# The SD3 endpoint takes cfg_scale from 1 to 10 (and refuses anything else when the job runs).
SD3_GUIDANCE_RANGE = (1.0, 10.0)
# Any Stable Diffusion 3.x model id ("sd3.5-large", "sd3.5-flash", ...) goes to the SD3 endpoint.
SD3_FAMILY = r"sd3(\.[0-9]+)?-[\w.-]+"


def _model(model_id: str, label: str, types: set[GenerationType], max_images: int = 10) -> ModelInfo:
    ratios = None if types == {T.upscale} else ASPECT_RATIOS
    guidance = SD3_GUIDANCE_RANGE if re.fullmatch(SD3_FAMILY, model_id) else None
    return ModelInfo(
        id=model_id,
        label=label,
        types=frozenset(types),
        max_images=max_images,
        aspect_ratios=ratios,
        guidance_range=guidance,
        upscale=_UPSCALERS[model_id].spec if model_id in _UPSCALERS else None,
    )


CAPABILITIES = ProviderCapabilities(
    types=frozenset({T.text2img, T.img2img, T.inpaint, T.upscale}),
    models=(
        _model(CORE, "Stable Image Core", {T.text2img}),
        _model(ULTRA, "Stable Image Ultra", {T.text2img, T.img2img}),
        _model(SD35_LARGE, "Stable Diffusion 3.5 Large", {T.text2img, T.img2img}),
        _model(SD35_LARGE_TURBO, "Stable Diffusion 3.5 Large Turbo", {T.text2img, T.img2img}),
        _model(SD35_MEDIUM, "Stable Diffusion 3.5 Medium", {T.text2img, T.img2img}),
        _model(INPAINT, "Stable Image Inpaint", {T.inpaint}),
        _model(UPSCALE_FAST, "Fast upscale (4x)", {T.upscale}, max_images=1),
        _model(UPSCALE_CONSERVATIVE, "Conservative upscale (to about 4 MP)", {T.upscale}, max_images=1),
        _model(UPSCALE_CREATIVE, "Creative upscale (to about 4 MP)", {T.upscale}, max_images=1),
    ),
    default_model=CORE,
    max_images=10,
    min_size=64,
    max_size=4096,
    size_multiple=1,  # only the aspect ratio is sent
    upscale_factors=(4,),
    honours_seed=True,
    honours_negative_prompt=True,
    honours_strength=True,
    supports_mask=True,
)


# Stability publishes no model listing, so the families only serve IMAGESTUDIO_STABILITY_MODELS:
# each known product by its exact id, and any SD3 model id.
MODEL_FAMILIES = (
    *(ModelFamily(re.escape(m.id), m) for m in CAPABILITIES.models if not re.fullmatch(SD3_FAMILY, m.id)),
    ModelFamily(
        SD3_FAMILY,
        ModelInfo(
            "sd3",
            "Stable Diffusion 3",
            frozenset({T.text2img, T.img2img}),
            aspect_ratios=ASPECT_RATIOS,
            guidance_range=SD3_GUIDANCE_RANGE,
        ),
    ),
)


class StabilityProvider(HostedImageByImage):
    name = "stability"
    kind = "stability"
    capability_table = CAPABILITIES
    model_families = MODEL_FAMILIES
    models_setting = "IMAGESTUDIO_STABILITY_MODELS"
    service_label = "Stability AI API"
    key_env_var = "IMAGESTUDIO_STABILITY_API_KEY"
    default_base_url = "https://api.stability.ai"
    default_timeout = 120.0

    def __init__(
        self, api_key: str | None, *, poll_interval: float = 5.0, poll_timeout: float = 600.0, **options: Any
    ) -> None:
        """`options` are HostedProvider's: client, base_url, timeout, name."""
        super().__init__(api_key, **options)
        self._poll_interval = poll_interval
        self._poll_timeout = poll_timeout

    def _in_one_call(self, request: GenerationRequest) -> bool:
        return request.type == T.upscale

    def _image_call(self, request: GenerationRequest, model: str, key: str, cancel: CancellationToken) -> ImageCall:
        """One request per image; image `index` uses seed + index, so a retried index comes out the same."""
        path, fixed_parts = self._generation_parts(request, model)

        async def call(index: int) -> tuple[GeneratedImage, dict[str, Any]]:
            parts = list(fixed_parts)
            if request.seed is not None:
                parts.append(form_field("seed", (request.seed + index) % SEED_MODULUS))
            response = await self._send(
                "POST",
                f"{self._base_url}{path}",
                cancel=cancel,
                headers=self._headers(key, accept="image/*"),
                files=parts,
            )
            return self._read_image(response), {"requests": 1}

        return call

    # ---- request bodies ----

    def _generation_parts(self, request: GenerationRequest, model: str) -> tuple[str, list[FormPart]]:
        """The endpoint path and the form fields every image of the batch shares."""
        parts: list[FormPart] = [form_field("prompt", request.prompt), form_field("output_format", "png")]
        negative = request.negative_prompt
        style = request.extra.get("style_preset")

        if request.type == T.inpaint:
            init = request.init_image
            mask = request.mask_image
            assert init is not None and mask is not None  # guaranteed by check_request
            parts += [png_part("image", init), png_part("mask", _stability_mask(mask, init.size))]
            grow = request.extra.get("grow_mask")
            if grow is not None:
                parts.append(form_field("grow_mask", grow))
            path = "/v2beta/stable-image/edit/inpaint"
        elif re.fullmatch(SD3_FAMILY, model):
            parts.append(form_field("model", model))
            if request.type == T.img2img:
                assert request.init_image is not None
                parts += [
                    form_field("mode", "image-to-image"),
                    png_part("image", request.init_image),
                    form_field("strength", _strength(request)),
                ]
            else:
                parts += [form_field("mode", "text-to-image"), form_field("aspect_ratio", self._ratio(request))]
            if request.guidance is not None:
                parts.append(form_field("cfg_scale", request.guidance))
            if model == SD35_LARGE_TURBO:
                negative = None  # the turbo model ignores negative prompts
            path = "/v2beta/stable-image/generate/sd3"
        elif model == ULTRA:
            if request.type == T.img2img:
                assert request.init_image is not None
                parts += [png_part("image", request.init_image), form_field("strength", _strength(request))]
            else:
                parts.append(form_field("aspect_ratio", self._ratio(request)))
            path = "/v2beta/stable-image/generate/ultra"
        else:
            parts.append(form_field("aspect_ratio", self._ratio(request)))
            path = "/v2beta/stable-image/generate/core"

        if negative:
            parts.append(form_field("negative_prompt", negative))
        if style is not None:
            parts.append(form_field("style_preset", style))
        return path, parts

    @staticmethod
    def _ratio(request: GenerationRequest) -> str:
        if request.aspect_ratio in ASPECT_RATIOS:
            return request.aspect_ratio
        return nearest_aspect_ratio(request.width, request.height, ASPECT_RATIOS)

    def _headers(self, key: str, *, accept: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "Accept": accept, "Stability-Client-ID": "imagestudio"}

    # ---- upscaling ----

    async def _one_call(
        self,
        request: GenerationRequest,
        model: str,
        key: str,
        progress: ProgressCallback,
        cancel: CancellationToken,
    ) -> GenerationResult:
        """An upscale: one call for its only image."""
        limits = _UPSCALERS[model]
        source = request.init_image
        assert source is not None  # its size was checked with the request (UpscaleSpec)
        if limits.needs_prompt and not request.prompt.strip():
            raise PermanentError(f"{model} needs a prompt describing the image", code=UNSUPPORTED)

        parts: list[FormPart] = [png_part("image", source), form_field("output_format", "png")]
        if limits.needs_prompt:
            parts.append(form_field("prompt", request.prompt))
            if request.negative_prompt:
                parts.append(form_field("negative_prompt", request.negative_prompt))
            if request.seed is not None:
                parts.append(form_field("seed", request.seed % SEED_MODULUS))
            creativity = request.extra.get("creativity")
            if creativity is not None:
                parts.append(form_field("creativity", creativity))
        url = f"{self._base_url}/v2beta/stable-image/upscale/{limits.path}"

        progress(0, 1)
        if model == UPSCALE_CREATIVE:
            response = await self._send(
                "POST", url, cancel=cancel, headers=self._headers(key, accept="application/json"), files=parts
            )
            if response.status_code != 200:
                raise self._error_from(response)
            job_id = _job_id(response)
            image = await self._poll_result(job_id, key, cancel)
        else:
            response = await self._send(
                "POST", url, cancel=cancel, headers=self._headers(key, accept="image/*"), files=parts
            )
            image = self._read_image(response)
        progress(1, 1)
        return self._priced(GenerationResult(images=[image], model=model, usage={"requests": 1}))

    async def _poll_result(self, job_id: str, key: str, cancel: CancellationToken) -> GeneratedImage:
        """Poll GET /v2beta/results/{id} until the image is ready (202 means still running)."""
        give_up_at = time.monotonic() + self._poll_timeout
        url = f"{self._base_url}/v2beta/results/{job_id}"
        while True:
            await self._sleep(self._poll_interval, cancel)
            response = await self._send("GET", url, cancel=cancel, headers=self._headers(key, accept="image/*"))
            if response.status_code != 202:
                return self._read_image(response)
            if time.monotonic() >= give_up_at:
                raise RetriableError(
                    f"Stability AI creative upscale still running after {self._poll_timeout:g}s",
                    code=TIMED_OUT,
                )

    # ---- responses ----

    def _read_image(self, response: httpx.Response) -> GeneratedImage:
        if response.status_code != 200:
            raise self._error_from(response)
        finish = response.headers.get("finish-reason", "SUCCESS").strip().upper()
        if finish == "CONTENT_FILTERED":
            raise ContentRejectedError("Stability AI filtered the output for violating its content policy")
        if finish != "SUCCESS":
            raise PermanentError(f"Stability AI finished with {finish}", code=BAD_RESPONSE)
        content_type = response.headers.get("content-type", "")
        if not content_type.startswith("image/"):
            raise PermanentError(
                f"Stability AI answered {content_type or 'no content type'} instead of an image",
                code=BAD_RESPONSE,
            )
        image = decode_image(response.content, source="Stability AI")
        return GeneratedImage(image=image, seed=_int_or_none(response.headers.get("seed")))

    def _error_from(self, response: httpx.Response) -> ProviderError:
        status = response.status_code
        body = json_or_none(response)
        body = body if isinstance(body, dict) else {}
        name = str(body.get("name") or "")
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            detail = "; ".join(str(item) for item in errors)
        else:
            detail = short_text(response) or response.reason_phrase
        text = self._redact(f"Stability AI {status}{f' {name}' if name else ''}: {detail}")

        if name == "content_moderation":
            return ContentRejectedError(text)
        if status == 402 or name == "payment_required":
            return PermanentError(text, code=QUOTA_EXCEEDED)
        hint = retry_after_seconds(response.headers)
        if status == 429 and hint is None:
            hint = RATE_LIMIT_LOCKOUT
        return error_for_status(status, text, retry_after=hint)


# ---- helpers ----


def _strength(request: GenerationRequest) -> float:
    return request.strength if request.strength is not None else DEFAULT_STRENGTH


def _stability_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Stability reads masks like ours (white = repaint, black = keep); it only needs the image's size."""
    grey = mask.convert("L")
    return grey if grey.size == size else grey.resize(size, Image.Resampling.NEAREST)


def _job_id(response: httpx.Response) -> str:
    body = json_or_none(response)
    job_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(job_id, str) or not job_id:
        raise PermanentError("Stability AI accepted the upscale but returned no id", code=BAD_RESPONSE)
    return job_id


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
