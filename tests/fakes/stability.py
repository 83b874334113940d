"""A fake Stability AI v2beta Stable Image API speaking the real wire format.

Routes: POST /v2beta/stable-image/generate/{core,ultra,sd3}, /v2beta/stable-image/edit/inpaint,
/v2beta/stable-image/upscale/{fast,conservative,creative}, GET /v2beta/results/{id}. Requests
must be multipart/form-data with `Authorization: Bearer <key>`; with `Accept: image/*` the body
is the image and `finish-reason` / `seed` ride in headers. Errors are `{"id", "name", "errors"}`.

The fake checks every field against the documented enums and ranges and, stricter than the
service, refuses fields an endpoint does not document, so a misspelt parameter fails loudly.
"""

from __future__ import annotations

import base64
import io
import math
import secrets
from typing import Any

import httpx
from PIL import Image, ImageFilter, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagestudio.providers.stability import StabilityProvider
from tests.fakes.common import (
    FakeService,
    Fault,
    RecordedRequest,
    UploadedFile,
    client_for,
    colour_for,
    paint_where,
    png_bytes,
    record,
)

BASE_URL = "https://api.stability.ai"

ASPECT_RATIOS = {
    "16:9": (1344, 768),
    "1:1": (1024, 1024),
    "21:9": (1536, 640),
    "2:3": (832, 1216),
    "3:2": (1216, 832),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
STYLE_PRESETS = {
    "3d-model",
    "analog-film",
    "anime",
    "cinematic",
    "comic-book",
    "digital-art",
    "enhance",
    "fantasy-art",
    "isometric",
    "line-art",
    "low-poly",
    "modeling-compound",
    "neon-punk",
    "origami",
    "photographic",
    "pixel-art",
    "tile-texture",
}
SD3_MODELS = {"sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash"}
MAX_SEED = 4294967294

COMMON = {"prompt", "negative_prompt", "seed", "style_preset", "output_format"}
ENDPOINT_FIELDS = {
    "core": COMMON | {"aspect_ratio"},
    "ultra": COMMON | {"aspect_ratio", "image", "strength"},
    "sd3": COMMON | {"aspect_ratio", "image", "strength", "mode", "model", "cfg_scale"},
    "inpaint": COMMON | {"image", "mask", "grow_mask"},
    "fast": {"image", "output_format"},
    "conservative": {
        "image",
        "prompt",
        "negative_prompt",
        "seed",
        "creativity",
        "output_format",
        "style_preset",
    },
    "creative": {"image", "prompt", "negative_prompt", "seed", "creativity", "output_format", "style_preset"},
}


class InvalidRequest(Exception):
    def __init__(self, *errors: str, name: str = "bad_request", status: int = 400) -> None:
        super().__init__("; ".join(errors))
        self.errors, self.name, self.status = list(errors), name, status


def error_response(
    status: int, name: str, *errors: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"id": secrets.token_hex(16), "name": name, "errors": list(errors)},
        status_code=status,
        headers=headers,
    )


class FakeStability(FakeService):
    def __init__(self, api_key: str = "sk-fake-stability-key-0000") -> None:
        super().__init__(api_key)
        # How many polls a creative upscale answers 202 before the image is ready.
        self.creative_pending_polls = 0
        self._jobs: dict[str, dict[str, Any]] = {}
        self._seed_counter = 1000
        routes = [
            Route(f"/v2beta/stable-image/generate/{name}", self._post(name), methods=["POST"])
            for name in ("core", "ultra", "sd3")
        ]
        routes.append(Route("/v2beta/stable-image/edit/inpaint", self._post("inpaint"), methods=["POST"]))
        routes += [
            Route(f"/v2beta/stable-image/upscale/{name}", self._post(name), methods=["POST"])
            for name in ("fast", "conservative", "creative")
        ]
        routes.append(Route("/v2beta/results/{job_id}", self._result, methods=["GET"]))
        self.app = Starlette(routes=routes)

    # ---- plumbing ----

    def _post(self, endpoint: str):
        async def handler(request: Request) -> Response:
            return await self._serve(request, endpoint)

        return handler

    async def _authorise(self, request: Request) -> tuple[RecordedRequest, Response | None]:
        recorded = await record(request)
        self.requests.append(recorded)
        if not self.accepts(recorded.headers.get("authorization", "").removeprefix("Bearer ")):
            return recorded, error_response(
                401, "unauthorized", "authorization: invalid or missing header value"
            )
        return recorded, None

    async def _serve(self, request: Request, endpoint: str) -> Response:
        recorded, refusal = await self._authorise(request)
        if refusal is not None:
            return refusal
        fault = self.next_fault()
        await self.delay(fault)
        if fault is not None and fault.kind not in ("slow", "content"):
            return self._fault_response(fault)
        try:
            if not recorded.content_type.startswith("multipart/form-data"):
                raise InvalidRequest("content-type: must be multipart/form-data")
            fields = self._fields(recorded, endpoint)
            if endpoint == "creative":
                return self._start_creative(recorded, fields)
            if fault is not None and fault.kind == "content" and fault.options.get("where") == "request":
                raise InvalidRequest(
                    "Your request was flagged by our content moderation system, as a result your request was "
                    "denied and you were not charged.",
                    name="content_moderation",
                    status=403,
                )
            image, seed = self._render(endpoint, recorded, fields)
        except InvalidRequest as exc:
            return error_response(exc.status, exc.name, *exc.errors)
        finish = "SUCCESS"
        if fault is not None and fault.kind == "content":
            finish = "CONTENT_FILTERED"
            image = image.filter(ImageFilter.GaussianBlur(8))
        self.completed += 1
        return self._image_response(recorded, image, seed, finish, fields.get("output_format", "png"))

    def _fault_response(self, fault: Fault) -> Response:
        if fault.kind == "rate_limit":
            headers = {}
            if fault.options.get("header", True) and fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            return error_response(
                429,
                "rate_limit_exceeded",
                "You have exceeded the rate limit of 150 requests within a 10 second period, and have been "
                "timed out for 60 seconds.",
                headers=headers,
            )
        if fault.kind == "quota":
            return error_response(
                402,
                "payment_required",
                "You lack sufficient credits to make this request. Please purchase more credits at "
                "https://platform.stability.ai/account/credits and try again.",
            )
        if fault.kind == "server_error":
            headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return error_response(
                fault.status or 500,
                "internal_error",
                "An unexpected server error has occurred, please try again later.",
                headers=headers,
            )
        if fault.kind == "malformed":
            if fault.options.get("shape") == "json":
                return JSONResponse({"unexpected": True}, headers={"finish-reason": "SUCCESS"})
            return Response(
                b"\x89PNG truncated",
                media_type="image/png",
                headers={"finish-reason": "SUCCESS", "seed": "1"},
            )
        raise AssertionError(f"fake Stability cannot play fault {fault.kind!r}")

    def _image_response(
        self, recorded: RecordedRequest, image: Image.Image, seed: int, finish: str, output_format: str
    ) -> Response:
        data = _encode(image, output_format)
        if recorded.headers.get("accept", "image/*").startswith("application/json"):
            return JSONResponse(
                {"image": base64.b64encode(data).decode(), "finish_reason": finish, "seed": seed}
            )
        return Response(
            data,
            media_type=f"image/{output_format}",
            headers={
                "finish-reason": finish,
                "seed": str(seed),
                "x-request-id": secrets.token_hex(16),
            },
        )

    # ---- validation ----

    def _fields(self, recorded: RecordedRequest, endpoint: str) -> dict[str, str]:
        allowed = ENDPOINT_FIELDS[endpoint]
        errors = [
            f"{name}: unknown field" for name in [*recorded.fields, *recorded.files] if name not in allowed
        ]
        errors += [
            f"{name}: must be given once" for name, values in recorded.fields.items() if len(values) > 1
        ]
        if errors:
            raise InvalidRequest(*errors)
        fields = {name: values[0] for name, values in recorded.fields.items()}
        for name in ("image", "mask"):
            if name in fields:
                raise InvalidRequest(f"{name}: must be a file, not a text field")
        prompt_required = endpoint not in ("fast",)
        prompt = fields.get("prompt", "")
        if prompt_required and not 1 <= len(prompt) <= 10000:
            raise InvalidRequest("prompt: cannot be empty" if not prompt else "prompt: too long")
        if "aspect_ratio" in fields and fields["aspect_ratio"] not in ASPECT_RATIOS:
            raise InvalidRequest(f"aspect_ratio: must be one of {', '.join(ASPECT_RATIOS)}")
        if "style_preset" in fields and fields["style_preset"] not in STYLE_PRESETS:
            raise InvalidRequest("style_preset: invalid value")
        formats = ("png", "jpeg") if endpoint == "sd3" else ("png", "jpeg", "webp")
        if fields.get("output_format", "png") not in formats:
            raise InvalidRequest(f"output_format: must be one of {', '.join(formats)}")
        if "seed" in fields:
            _number(fields["seed"], "seed", 0, MAX_SEED, integer=True)
        if "negative_prompt" in fields and len(fields["negative_prompt"]) > 10000:
            raise InvalidRequest("negative_prompt: too long")
        return fields

    def _seed(self, fields: dict[str, str]) -> int:
        seed = int(fields.get("seed", "0"))
        if seed == 0:  # 0 or absent means "pick one for me"
            self._seed_counter += 1
            return self._seed_counter
        return seed

    # ---- rendering ----

    def _render(
        self, endpoint: str, recorded: RecordedRequest, fields: dict[str, str]
    ) -> tuple[Image.Image, int]:
        prompt = fields.get("prompt", "")
        colour = colour_for(prompt) if prompt else (0, 0, 0)
        image_upload = recorded.file("image")
        seed = self._seed(fields)

        if endpoint in ("core", "ultra", "sd3"):
            mode = fields.get("mode", "text-to-image")
            if endpoint == "sd3":
                if mode not in ("text-to-image", "image-to-image"):
                    raise InvalidRequest("mode: must be text-to-image or image-to-image")
                if fields.get("model", "sd3.5-large") not in SD3_MODELS:
                    raise InvalidRequest(f"model: must be one of {', '.join(sorted(SD3_MODELS))}")
                if "cfg_scale" in fields:
                    _number(fields["cfg_scale"], "cfg_scale", 1, 10)
                if mode == "image-to-image" and "aspect_ratio" in fields:
                    raise InvalidRequest("aspect_ratio: only valid for text-to-image requests")
            elif endpoint == "ultra" and image_upload is not None:
                mode = "image-to-image"
            if mode == "image-to-image" or image_upload is not None:
                if image_upload is None:
                    raise InvalidRequest("image: required when mode is image-to-image")
                if "strength" not in fields:
                    raise InvalidRequest("strength: required when an image is provided")
                strength = _number(fields["strength"], "strength", 0, 1)
                source = _image(image_upload, "image", min_side=64, min_pixels=4096).convert("RGB")
                return Image.blend(source, Image.new("RGB", source.size, colour), strength), seed
            width, height = ASPECT_RATIOS[fields.get("aspect_ratio", "1:1")]
            return Image.new("RGB", (width, height), colour), seed

        if endpoint == "inpaint":
            if image_upload is None:
                raise InvalidRequest("image: is required")
            source = _image(image_upload, "image", min_side=64, min_pixels=4096).convert("RGB")
            mask_upload = recorded.file("mask")
            if "grow_mask" in fields:
                _number(fields["grow_mask"], "grow_mask", 0, 100)
            if mask_upload is None:
                if "A" not in _image(image_upload, "image").getbands():
                    raise InvalidRequest("mask: required when the image has no alpha channel")
                region = _image(image_upload, "image").getchannel("A").point(lambda a: 255 if a == 0 else 0)
            else:
                mask = _image(mask_upload, "mask")
                if mask.size != source.size:
                    raise InvalidRequest("mask: must have the same dimensions as image")
                # White repaints, black keeps.
                region = mask.convert("L").point(lambda v: 255 if v > 127 else 0)
            return paint_where(source, region, colour), seed

        if image_upload is None:
            raise InvalidRequest("image: is required")
        if endpoint == "fast":
            source = _image(
                image_upload, "image", min_side=32, max_side=1536, min_pixels=1024, max_pixels=1_048_576
            )
            return source.convert("RGB").resize((source.width * 4, source.height * 4)), seed
        if "creativity" in fields:
            _number(fields["creativity"], "creativity", 0.2, 0.5)
        source = _image(image_upload, "image", min_side=64, min_pixels=4096, max_pixels=9_437_184, max_ratio=2.5)
        return _to_four_megapixels(source), seed

    # ---- async creative upscale ----

    def _start_creative(self, recorded: RecordedRequest, fields: dict[str, str]) -> Response:
        upload = recorded.file("image")
        if upload is None:
            raise InvalidRequest("image: is required")
        if "creativity" in fields:
            _number(fields["creativity"], "creativity", 0.1, 0.5)
        source = _image(upload, "image", min_side=64, min_pixels=4096, max_pixels=1_048_576, max_ratio=2.5)
        job_id = secrets.token_hex(32)
        self._jobs[job_id] = {
            "image": _to_four_megapixels(source),
            "seed": self._seed(fields),
            "pending": self.creative_pending_polls,
            "output_format": fields.get("output_format", "png"),
        }
        return JSONResponse({"id": job_id})

    async def _result(self, request: Request) -> Response:
        recorded, refusal = await self._authorise(request)
        if refusal is not None:
            return refusal
        fault = self.next_fault()
        await self.delay(fault)
        if fault is not None and fault.kind != "slow":
            return self._fault_response(fault)
        job_id = request.path_params["job_id"]
        job = self._jobs.get(job_id)
        if job is None:
            return error_response(404, "not_found", f"Generation with id {job_id} not found or expired.")
        if job["pending"] > 0:
            job["pending"] -= 1
            return JSONResponse({"id": job_id, "status": "in-progress"}, status_code=202)
        del self._jobs[job_id]
        self.completed += 1
        return self._image_response(recorded, job["image"], job["seed"], "SUCCESS", job["output_format"])

    @property
    def open_jobs(self) -> int:
        return len(self._jobs)


# ---- helpers ----


def _number(raw: str, name: str, low: float, high: float, *, integer: bool = False) -> float:
    try:
        value = int(raw) if integer else float(raw)
    except ValueError:
        raise InvalidRequest(f"{name}: must be a number") from None
    if not low <= value <= high:
        raise InvalidRequest(f"{name}: must be between {low:g} and {high:g}")
    return value


def _image(
    upload: UploadedFile,
    name: str,
    *,
    min_side: int = 1,
    max_side: int | None = None,
    min_pixels: int = 1,
    max_pixels: int = 100_000_000,
    max_ratio: float | None = None,
) -> Image.Image:
    try:
        image = upload.image()
    except (UnidentifiedImageError, OSError):
        raise InvalidRequest(f"{name}: unsupported image format (use jpeg, png or webp)") from None
    if image.format not in ("PNG", "JPEG", "WEBP"):
        raise InvalidRequest(f"{name}: unsupported image format (use jpeg, png or webp)")
    width, height = image.size
    if min(width, height) < min_side or (max_side is not None and max(width, height) > max_side):
        raise InvalidRequest(
            f"{name}: width and height must be at least {min_side}"
            + (f" and at most {max_side}" if max_side else "")
        )
    if not min_pixels <= width * height <= max_pixels:
        raise InvalidRequest(f"{name}: total pixel count must be between {min_pixels} and {max_pixels}")
    if max_ratio is not None and max(width, height) / min(width, height) > max_ratio:
        raise InvalidRequest(f"{name}: aspect ratio must be between 1:{max_ratio:g} and {max_ratio:g}:1")
    return image


def _to_four_megapixels(image: Image.Image) -> Image.Image:
    scale = math.sqrt(4_194_304 / (image.width * image.height))
    return image.convert("RGB").resize((round(image.width * scale), round(image.height * scale)))


def _encode(image: Image.Image, output_format: str) -> bytes:
    if output_format == "png":
        return png_bytes(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format={"jpeg": "JPEG", "webp": "WEBP"}[output_format])
    return buffer.getvalue()


def stability_provider(
    fake: FakeStability,
    client: httpx.AsyncClient | None = None,
    *,
    api_key: str | None = None,
    **options: Any,
) -> StabilityProvider:
    """A StabilityProvider whose only network is the fake; polls fast unless told otherwise."""
    key = fake.api_key if api_key is None else api_key
    options.setdefault("poll_interval", 0.01)
    return StabilityProvider(key, client=client or client_for(fake.app, BASE_URL), **options)
