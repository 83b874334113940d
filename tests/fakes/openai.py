"""A fake OpenAI Images API speaking the real wire format, as of November 2026.

Routes: GET /v1/models, POST /v1/images/generations (JSON) and /v1/images/edits (multipart).
Auth is `Authorization: Bearer <key>`; errors are `{"error": {message, type, param, code}}` with
the status codes and messages the real service uses. Requests the real API would refuse (unknown
parameters, retired DALL·E models, wrong sizes, masks without alpha, ...) get the real 400 answer,
so an adapter bug fails loudly.

The model list holds today's gpt-image models (DALL·E 2 and 3 are retired) among text, audio and
embedding models, like a real account's. `answer_with = "url"` plays a compatible server that
answers links (served under /files/) instead of base64.
"""

from __future__ import annotations

import base64
import io
import time
from typing import Any

import httpx
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from imagestudio.providers.openai import OpenAIProvider
from tests.fakes.common import (
    FakeService,
    Fault,
    RecordedRequest,
    UploadedFile,
    client_for,
    colour_for,
    paint_where,
    record,
)

BASE_URL = "https://api.openai.com"

# Image models the fake serves; an account's listing also names models of other kinds.
IMAGE_MODELS = ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2")
OTHER_MODELS = ("gpt-5", "gpt-4o", "whisper-1", "tts-1", "text-embedding-3-small", "omni-moderation-latest")
SIZES = ("1024x1024", "1536x1024", "1024x1536", "auto")
CHOICES = {
    "quality": ("low", "medium", "high", "auto"),
    "background": ("transparent", "opaque", "auto"),
    "output_format": ("png", "jpeg", "webp"),
    "moderation": ("low", "auto"),
    "input_fidelity": ("high", "low"),
}
GENERATION_PARAMS = {
    "prompt",
    "model",
    "n",
    "quality",
    "size",
    "user",
    "output_format",
    "output_compression",
    "moderation",
    "background",
    "partial_images",
    "stream",
}
EDIT_FIELDS = {*GENERATION_PARAMS, "input_fidelity"}
# The longest prompt each model takes, in characters.
PROMPT_MAX = dict.fromkeys(IMAGE_MODELS, 32_000)
INTEGER_PARAMS = frozenset({"n", "output_compression", "partial_images"})
BOOLEAN_PARAMS = frozenset({"stream"})
MAX_UPLOAD = 4 * 1024 * 1024


class InvalidRequest(Exception):
    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.message, self.param, self.code, self.status = message, param, code, status


def error_body(
    message: str, *, type_: str = "invalid_request_error", param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def masked_key(key: str) -> str:
    """OpenAI echoes a wrong key in its 401 message: the first 8 and last 4 characters with the middle
    starred out ("sk-5ZHQn****…pYxy"); a key too short to hide anything (12 characters or fewer) is
    echoed whole ("Incorrect API key provided: sk-xxxxxx.")."""
    if len(key) <= 12:
        return key
    return f"{key[:8]}{'*' * (len(key) - 12)}{key[-4:]}"


class FakeOpenAI(FakeService):
    def __init__(self, api_key: str = "sk-fake-openai-key-0000") -> None:
        super().__init__(api_key)
        self.app = Starlette(
            routes=[
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/v1/images/generations", self._generations, methods=["POST"]),
                Route("/v1/images/edits", self._edits, methods=["POST"]),
                Route("/files/{name}", self._file, methods=["GET"]),
            ]
        )
        # What GET /v1/models lists; tests may change it to play a newer or older account.
        self.models: list[str] = [*IMAGE_MODELS, *OTHER_MODELS]
        # "b64_json" like OpenAI, or "url" like compatible servers that link to the images.
        self.answer_with = "b64_json"
        self.files: dict[str, bytes] = {}
        self.file_requests: list[RecordedRequest] = []

    # ---- plumbing ----

    async def _serve(self, request: Request, endpoint) -> Response:
        recorded = await record(request)
        self.requests.append(recorded)
        auth = recorded.headers.get("authorization")
        if not auth:
            return JSONResponse(
                error_body(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
                    "or as the password field (with blank username) if you're accessing the API "
                    "from your browser and are prompted for a username and password. You can "
                    "obtain an API key from https://platform.openai.com/account/api-keys."
                ),
                status_code=401,
            )
        if not self.accepts(auth.removeprefix("Bearer ")):
            presented = auth.removeprefix("Bearer ").strip()
            return JSONResponse(
                error_body(
                    f"Incorrect API key provided: {masked_key(presented)}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                ),
                status_code=401,
            )

        fault = self.next_fault()
        await self.delay(fault)
        if fault is not None and fault.kind != "slow":
            return self._fault_response(fault, recorded)
        try:
            response = endpoint(recorded)
        except InvalidRequest as exc:
            return JSONResponse(error_body(exc.message, param=exc.param, code=exc.code), status_code=exc.status)
        self.completed += 1
        return response

    def _fault_response(self, fault: Fault, recorded: RecordedRequest) -> Response:
        if fault.kind == "rate_limit":
            headers = {"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "0"}
            if fault.options.get("header", True) and fault.retry_after is not None:
                headers["retry-after"] = f"{fault.retry_after:g}"
            headers["x-ratelimit-reset-requests"] = fault.options.get("reset", "1s")
            return JSONResponse(
                error_body(
                    "Rate limit reached for images per minute in organization org-fake. Limit: 5/1min. "
                    "Current: 6/1min. Please try again later.",
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
            status = fault.status or 500
            message = (
                "The engine is currently overloaded, please try again later."
                if status == 503
                else "The server had an error while processing your request. Sorry about that!"
            )
            headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            return JSONResponse(error_body(message, type_="server_error"), status_code=status, headers=headers)
        if fault.kind == "content":
            body = error_body(
                "Your request was rejected by the safety system. If you believe this is an error, "
                "contact us at help.openai.com and include the request ID req_fake.",
                type_="image_generation_user_error",
                code="moderation_blocked",
            )
            return JSONResponse(body, status_code=400)
        if fault.kind == "malformed":
            shape = fault.options.get("shape", "truncated")
            if shape == "no_data":
                return JSONResponse({"created": int(time.time()), "data": []})
            if shape == "not_image":
                junk = base64.b64encode(b"definitely not a png").decode()
                return JSONResponse({"created": int(time.time()), "data": [{"b64_json": junk}]})
            return Response('{"created": 1700000000, "data": [{"b64_json": "iVBO', media_type="application/json")
        raise AssertionError(f"fake OpenAI cannot play fault {fault.kind!r}")

    # ---- endpoints ----

    async def _models(self, request: Request) -> Response:
        return await self._serve(request, self._list_models)

    async def _generations(self, request: Request) -> Response:
        return await self._serve(request, self._generate)

    async def _edits(self, request: Request) -> Response:
        return await self._serve(request, self._edit)

    async def _file(self, request: Request) -> Response:
        """Image links of a compatible server: public, so they must not need (or get) the key."""
        self.file_requests.append(await record(request))
        data = self.files.get(request.path_params["name"])
        if data is None:
            return Response("not found", status_code=404)
        return Response(data, media_type="image/png")

    def _list_models(self, recorded: RecordedRequest) -> Response:
        created = 1_700_000_000
        data = [
            {"id": model, "object": "model", "created": created + index, "owned_by": "system"}
            for index, model in enumerate(self.models)
        ]
        return JSONResponse({"object": "list", "data": data})

    def _generate(self, recorded: RecordedRequest) -> Response:
        body = recorded.json
        if not isinstance(body, dict):
            raise InvalidRequest(
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
                "your HTTP library correctly.)"
            )
        for name in body:
            if name not in GENERATION_PARAMS:
                raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
        for name, value in body.items():
            _check_json_type(name, value)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequest(
                "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
            )
        model = body.get("model", "gpt-image-1")
        _check_model(model)
        _check_prompt_length(model, prompt)
        _check_options(model, body)
        n = _int_param(body.get("n", 1), "n")
        size = _check_size(body.get("size", "auto"))
        width, height = _dimensions(size) if size != "auto" else (1024, 1024)
        image = Image.new("RGB", (width, height), colour_for(prompt))
        return self._images_response(model, [image] * n, body)

    def _edit(self, recorded: RecordedRequest) -> Response:
        fields = _form_fields(recorded, EDIT_FIELDS, {"image", "image[]", "mask"})
        prompt = fields.get("prompt")
        if not prompt:
            raise InvalidRequest(
                "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
            )
        model = fields.get("model", "gpt-image-1")
        _check_model(model)
        _check_prompt_length(model, prompt)
        uploads = recorded.files.get("image", []) + recorded.files.get("image[]", [])
        if not uploads:
            raise InvalidRequest(
                "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
            )
        if len(uploads) > 16:
            raise InvalidRequest("You can provide up to 16 images.", param="image")
        options: dict[str, Any] = dict(fields)
        if "output_compression" in options:
            options["output_compression"] = _int_param(options["output_compression"], "output_compression", 0, 100)
        _check_options(model, options)
        images = [_read_image(upload, "image") for upload in uploads]
        source = images[0]
        n = _int_param(fields.get("n", "1"), "n")
        size = _check_size(fields.get("size", "auto"))
        width, height = _dimensions(size) if size != "auto" else source.size
        base = ImageOps.fit(source.convert("RGB"), (width, height))
        mask_upload = recorded.file("mask")
        colour = colour_for(prompt)
        if mask_upload is not None:
            mask = _read_png(mask_upload, "mask")
            if mask.mode not in ("RGBA", "LA"):
                raise InvalidRequest("Invalid mask image format - mask image missing alpha channel", param="mask")
            if mask.size != source.size:
                raise InvalidRequest("Invalid mask image - image and mask must be the same size", param="mask")
            # Fully transparent mask pixels are the area to repaint.
            transparent = mask.getchannel("A").point(lambda a: 255 if a == 0 else 0)
            result = paint_where(base, ImageOps.fit(transparent, (width, height)), colour)
        else:
            result = Image.blend(base, Image.new("RGB", (width, height), colour), 0.5)
        return self._images_response(model, [result] * n, options)

    def _images_response(self, model: str, images: list[Image.Image], options: dict[str, Any]) -> Response:
        data: list[dict[str, Any]] = []
        output_format = options.get("output_format", "png")
        for image in images:
            encoded = _encoded(image, output_format, transparent=options.get("background") == "transparent")
            if self.answer_with == "url":
                name = f"img-{len(self.files)}.{output_format}"
                self.files[name] = encoded
                data.append({"url": f"https://files.compatible.example/files/{name}"})
            else:
                data.append({"b64_json": base64.b64encode(encoded).decode()})
        body: dict[str, Any] = {"created": int(time.time()), "data": data, "output_format": output_format}
        output_tokens = 272 * len(images)
        input_tokens = 50
        body["usage"] = {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "input_tokens_details": {"text_tokens": input_tokens, "image_tokens": 0},
        }
        return JSONResponse(body)


# ---- validation helpers (messages follow the real API's) ----


def _check_model(model: Any) -> None:
    if model not in IMAGE_MODELS:
        raise InvalidRequest(f"Invalid value for 'model' = {model}.", param="model", code="invalid_value")


def _check_options(model: str, options: dict[str, Any]) -> None:
    for name, allowed in CHOICES.items():
        value = options.get(name)
        if value is not None and value not in allowed:
            raise InvalidRequest(
                f"Invalid value: '{value}'. Supported values are: {list(allowed)}.", param=name, code="invalid_value"
            )
    if "input_fidelity" in options and model == "gpt-image-1-mini":
        raise InvalidRequest("input_fidelity is not supported for gpt-image-1-mini.", param="input_fidelity")
    if options.get("background") == "transparent" and options.get("output_format") == "jpeg":
        raise InvalidRequest("Transparent background is not supported with jpeg output.", param="background")
    compression = options.get("output_compression")
    if compression is not None:
        if options.get("output_format") not in ("jpeg", "webp"):
            raise InvalidRequest("output_compression is only supported for jpeg and webp.", param="output_compression")
        _int_param(compression, "output_compression", 0, 100)


def _encoded(image: Image.Image, output_format: str, *, transparent: bool) -> bytes:
    if transparent:
        image = image.convert("RGBA")
        image.putalpha(0)
    buffer = io.BytesIO()
    image.save(buffer, format={"jpeg": "JPEG", "webp": "WEBP"}.get(output_format, "PNG"))
    return buffer.getvalue()


def _int_param(value: Any, name: str, low: int = 1, high: int = 10) -> int:
    """An integer parameter: a JSON integer, or in a form the digits of one; within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRequest(f"Invalid type for '{name}': expected an integer.", param=name, code="invalid_type")
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit():
            raise InvalidRequest(
                f"Invalid type for '{name}': expected an integer, but got a string instead.",
                param=name,
                code="invalid_type",
            )
        value = int(text)
    if value > high:
        raise InvalidRequest(
            f"Invalid '{name}': integer above maximum value. Expected a value <= {high}, but got {value} instead.",
            param=name,
            code="integer_above_max_value",
        )
    if value < low:
        raise InvalidRequest(
            f"Invalid '{name}': integer below minimum value. Expected a value >= {low}, but got {value} instead.",
            param=name,
            code="integer_below_min_value",
        )
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "an array" if isinstance(value, list) else "an object"


def _check_json_type(name: str, value: Any) -> None:
    """JSON bodies are typed: integers must be JSON integers ("2" and 2.5 are refused), `stream` a
    boolean, the rest strings."""
    wanted = "an integer" if name in INTEGER_PARAMS else "a boolean" if name in BOOLEAN_PARAMS else "a string"
    if _json_kind(value) != wanted:
        raise InvalidRequest(
            f"Invalid type for '{name}': expected {wanted}, but got {_json_kind(value)} instead.",
            param=name,
            code="invalid_type",
        )


def _check_prompt_length(model: str, prompt: str) -> None:
    limit = PROMPT_MAX[model]
    if len(prompt) > limit:
        raise InvalidRequest(
            f"Invalid 'prompt': string too long. Expected a string with maximum length {limit}, "
            f"but got a string with length {len(prompt)} instead.",
            param="prompt",
            code="string_above_max_length",
        )


def _check_size(size: Any) -> str:
    if size not in SIZES:
        raise InvalidRequest(f"'{size}' is not one of {list(SIZES)} - 'size'", param="size")
    return str(size)


def _dimensions(size: str) -> tuple[int, int]:
    width, height = size.split("x")
    return int(width), int(height)


def _form_fields(recorded: RecordedRequest, allowed_fields: set[str], allowed_files: set[str]) -> dict[str, str]:
    if not recorded.content_type.startswith("multipart/form-data"):
        raise InvalidRequest("This endpoint expects multipart/form-data.")
    for name in recorded.fields:
        if name not in allowed_fields:
            raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    for name in recorded.files:
        if name not in allowed_files:
            raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    return {name: values[0] for name, values in recorded.fields.items()}


def _read_image(upload: UploadedFile, param: str) -> Image.Image:
    try:
        image = upload.image()
    except (UnidentifiedImageError, OSError):
        raise InvalidRequest(f"Invalid file '{param}': unsupported image format.", param=param) from None
    if image.format not in ("PNG", "JPEG", "WEBP"):
        raise InvalidRequest(f"Invalid file '{param}': unsupported mimetype. Supported: png, jpeg, webp.", param=param)
    return image


def _read_png(upload: UploadedFile, param: str) -> Image.Image:
    if len(upload.data) > MAX_UPLOAD:
        raise InvalidRequest(f"Invalid input {param} - must be less than 4 MB.", param=param)
    try:
        image = Image.open(io.BytesIO(upload.data))
        image.load()
    except (UnidentifiedImageError, OSError):
        raise InvalidRequest(f"Invalid input {param} - must be a valid PNG file.", param=param) from None
    if image.format != "PNG":
        raise InvalidRequest(f"Invalid input {param} - must be a valid PNG file.", param=param)
    return image


def openai_provider(
    fake: FakeOpenAI, client: httpx.AsyncClient | None = None, *, api_key: str | None = None, **options: Any
) -> OpenAIProvider:
    """An OpenAIProvider whose only network is the fake; api_key defaults to the one the fake accepts."""
    key = fake.api_key if api_key is None else api_key
    return OpenAIProvider(key, client=client or client_for(fake.app, BASE_URL), **options)
