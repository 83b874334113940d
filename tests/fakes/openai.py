"""A fake OpenAI Images API speaking the real wire format.

Routes: POST /v1/images/generations (JSON), /v1/images/edits and /v1/images/variations
(multipart). Auth is `Authorization: Bearer <key>`; errors are `{"error": {message, type, param,
code}}` with the status codes and messages the real service uses. Requests the real API would
refuse (unknown parameters, wrong sizes, RGB images for dall-e-2 edits, masks without alpha, ...)
get the real 400 answer, so an adapter bug fails loudly.
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
    png_bytes,
    record,
)

BASE_URL = "https://api.openai.com"

SIZES = {
    "gpt-image-1": ("1024x1024", "1536x1024", "1024x1536", "auto"),
    "dall-e-3": ("1024x1024", "1792x1024", "1024x1792"),
    "dall-e-2": ("256x256", "512x512", "1024x1024"),
}
QUALITIES = {
    "gpt-image-1": ("low", "medium", "high", "auto"),
    "dall-e-3": ("standard", "hd", "auto"),
    "dall-e-2": ("standard", "auto"),
}
GENERATION_PARAMS = {
    "prompt",
    "model",
    "n",
    "quality",
    "response_format",
    "size",
    "style",
    "user",
    "output_format",
    "output_compression",
    "moderation",
    "background",
}
GPT_IMAGE_ONLY = {"output_format", "output_compression", "moderation", "background"}
EDIT_FIELDS = {
    "prompt",
    "model",
    "n",
    "quality",
    "response_format",
    "size",
    "user",
    "background",
    "output_format",
    "output_compression",
}
VARIATION_FIELDS = {"model", "n", "response_format", "size", "user"}
MAX_UPLOAD = 4 * 1024 * 1024
# Longest prompt each model takes, in characters (the API reference's limits).
PROMPT_MAX = {"gpt-image-1": 32000, "dall-e-3": 4000, "dall-e-2": 1000}
# Parameters with a closed set of values (the same for every model that takes them).
ALLOWED_VALUES = {
    "response_format": ("url", "b64_json"),
    "style": ("vivid", "natural"),
    "output_format": ("png", "jpeg", "webp"),
    "moderation": ("low", "auto"),
    "background": ("transparent", "opaque", "auto"),
}
INTEGER_PARAMS = {"n", "output_compression"}
# gpt-image-1 answers size "auto" with a square image unless it has a source to follow.
AUTO_SIZE = "1024x1024"


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
                Route("/v1/images/generations", self._generations, methods=["POST"]),
                Route("/v1/images/edits", self._edits, methods=["POST"]),
                Route("/v1/images/variations", self._variations, methods=["POST"]),
            ]
        )

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
        if auth != f"Bearer {self.api_key}":
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
            return JSONResponse(
                error_body(exc.message, param=exc.param, code=exc.code), status_code=exc.status
            )
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
            return JSONResponse(
                error_body(message, type_="server_error"), status_code=status, headers=headers
            )
        if fault.kind == "content":
            model = _model_of(recorded)
            if model == "gpt-image-1":
                body = error_body(
                    "Your request was rejected by the safety system. If you believe this is an error, "
                    "contact us at help.openai.com and include the request ID req_fake.",
                    type_="image_generation_user_error",
                    code="moderation_blocked",
                )
            else:
                body = error_body(
                    "Your request was rejected as a result of our safety system. Your prompt may "
                    "contain text that is not allowed by our safety system.",
                    code="content_policy_violation",
                )
            return JSONResponse(body, status_code=400)
        if fault.kind == "malformed":
            shape = fault.options.get("shape", "truncated")
            if shape == "no_data":
                return JSONResponse({"created": int(time.time()), "data": []})
            if shape == "not_image":
                junk = base64.b64encode(b"definitely not a png").decode()
                return JSONResponse({"created": int(time.time()), "data": [{"b64_json": junk}]})
            return Response(
                '{"created": 1700000000, "data": [{"b64_json": "iVBO', media_type="application/json"
            )
        raise AssertionError(f"fake OpenAI cannot play fault {fault.kind!r}")

    # ---- endpoints ----

    async def _generations(self, request: Request) -> Response:
        return await self._serve(request, self._generate)

    async def _edits(self, request: Request) -> Response:
        return await self._serve(request, self._edit)

    async def _variations(self, request: Request) -> Response:
        return await self._serve(request, self._vary)

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
        model = body.get("model", "dall-e-2")
        _check_model(model, ("gpt-image-1", "dall-e-3", "dall-e-2"))
        _check_common(model, body)
        if model == "gpt-image-1" and "response_format" in body:
            raise InvalidRequest(
                "Unknown parameter: 'response_format'.", param="response_format", code="unknown_parameter"
            )
        if model != "gpt-image-1":
            for name in GPT_IMAGE_ONLY & body.keys():
                raise InvalidRequest(f"The '{name}' parameter is only supported for gpt-image-1.", param=name)
        if "style" in body and model != "dall-e-3":
            raise InvalidRequest("The 'style' parameter is only supported for dall-e-3.", param="style")
        n = _int_param(body.get("n", 1), "n")
        if model == "dall-e-3" and n != 1:
            raise InvalidRequest("You must provide n=1 for this model.", param="n")
        size = _check_size(model, body.get("size", "1024x1024"))
        _check_quality(model, body.get("quality"))
        width, height = _dimensions(AUTO_SIZE if size == "auto" else size)
        image = Image.new("RGB", (width, height), colour_for(prompt))
        return self._images_response(model, [image] * n, body.get("response_format"), prompt)

    def _edit(self, recorded: RecordedRequest) -> Response:
        fields = _form_fields(recorded, EDIT_FIELDS, {"image", "image[]", "mask"})
        prompt = fields.get("prompt")
        if not prompt:
            raise InvalidRequest(
                "Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter"
            )
        model = fields.get("model", "dall-e-2")
        _check_model(model, ("gpt-image-1", "dall-e-2"))
        _check_common(model, fields)
        uploads = recorded.files.get("image", []) + recorded.files.get("image[]", [])
        if not uploads:
            raise InvalidRequest(
                "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
            )
        if model == "dall-e-2":
            if len(uploads) != 1:
                raise InvalidRequest("dall-e-2 accepts exactly one image.", param="image")
            source = _read_png(uploads[0], "image", dalle2=True)
        else:
            if "response_format" in fields:
                raise InvalidRequest(
                    "Unknown parameter: 'response_format'.", param="response_format", code="unknown_parameter"
                )
            if len(uploads) > 16:
                raise InvalidRequest("You can provide up to 16 images.", param="image")
            images = [_read_image(upload, "image") for upload in uploads]
            source = images[0]
        n = _int_param(fields.get("n", "1"), "n")
        size = _check_size(model, fields.get("size", "1024x1024"))
        _check_quality(model, fields.get("quality"))
        width, height = _dimensions(size) if size != "auto" else source.size
        base = ImageOps.fit(source.convert("RGB"), (width, height))
        mask_upload = recorded.file("mask")
        colour = colour_for(prompt)
        if mask_upload is not None:
            mask = _read_png(mask_upload, "mask")
            if mask.mode not in ("RGBA", "LA"):
                raise InvalidRequest(
                    "Invalid mask image format - mask image missing alpha channel", param="mask"
                )
            if mask.size != source.size:
                raise InvalidRequest(
                    "Invalid mask image - image and mask must be the same size", param="mask"
                )
            # Fully transparent mask pixels are the area to repaint.
            transparent = mask.getchannel("A").point(lambda a: 255 if a == 0 else 0)
            result = paint_where(base, ImageOps.fit(transparent, (width, height)), colour)
        elif model == "dall-e-2":
            if "A" not in source.getbands() or source.getchannel("A").getextrema()[0] == 255:
                raise InvalidRequest(
                    "Invalid input image - image must have transparency when no mask is given", param="image"
                )
            result = paint_where(
                base,
                ImageOps.fit(source.getchannel("A").point(lambda a: 255 if a == 0 else 0), (width, height)),
                colour,
            )
        else:
            result = Image.blend(base, Image.new("RGB", (width, height), colour), 0.5)
        return self._images_response(model, [result] * n, fields.get("response_format"), prompt)

    def _vary(self, recorded: RecordedRequest) -> Response:
        fields = _form_fields(recorded, VARIATION_FIELDS, {"image"})
        model = fields.get("model", "dall-e-2")
        if model != "dall-e-2":
            raise InvalidRequest(
                f"Invalid value for 'model' = {model}. Only dall-e-2 is supported.", param="model"
            )
        upload = recorded.file("image")
        if upload is None:
            raise InvalidRequest(
                "Missing required parameter: 'image'.", param="image", code="missing_required_parameter"
            )
        _check_common(model, fields)
        source = _read_png(upload, "image", dalle2=True)
        n = _int_param(fields.get("n", "1"), "n")
        size = _check_size(model, fields.get("size", "1024x1024"))
        width, height = _dimensions(size)
        result = source.convert("RGB").resize((width, height))
        return self._images_response(model, [result] * n, fields.get("response_format"), None)

    def _images_response(
        self, model: str, images: list[Image.Image], response_format: str | None, prompt: str | None
    ) -> Response:
        data: list[dict[str, Any]] = []
        for image in images:
            if model == "gpt-image-1" or response_format == "b64_json":
                item: dict[str, Any] = {"b64_json": base64.b64encode(png_bytes(image)).decode()}
            else:
                item = {"url": "https://oaidalleapiprodscus.blob.core.windows.net/private/fake.png"}
            if model == "dall-e-3" and prompt:
                item["revised_prompt"] = f"A detailed rendering of {prompt}"
            data.append(item)
        body: dict[str, Any] = {"created": int(time.time()), "data": data}
        if model == "gpt-image-1":
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


def _model_of(recorded: RecordedRequest) -> str:
    if isinstance(recorded.json, dict):
        return str(recorded.json.get("model", "dall-e-2"))
    return recorded.field("model") or "dall-e-2"


def _check_model(model: Any, allowed: tuple[str, ...]) -> None:
    if model not in allowed:
        raise InvalidRequest(f"Invalid value for 'model' = {model}.", param="model", code="invalid_value")


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
    """JSON bodies are typed: integers must be JSON integers ("2" and 2.5 are refused), the rest strings."""
    wanted = "an integer" if name in INTEGER_PARAMS else "a string"
    if _json_kind(value) != wanted:
        raise InvalidRequest(
            f"Invalid type for '{name}': expected {wanted}, but got {_json_kind(value)} instead.",
            param=name,
            code="invalid_type",
        )


def _check_common(model: str, values: dict[str, Any]) -> None:
    """Checks every endpoint shares: the prompt's length for the model, closed sets of values, and
    output_compression's range."""
    prompt = values.get("prompt")
    if isinstance(prompt, str) and len(prompt) > PROMPT_MAX[model]:
        raise InvalidRequest(
            f"Invalid 'prompt': string too long. Expected a string with maximum length {PROMPT_MAX[model]}, "
            f"but got a string with length {len(prompt)} instead.",
            param="prompt",
            code="string_above_max_length",
        )
    for name, allowed in ALLOWED_VALUES.items():
        if name in values and values[name] not in allowed:
            supported = " and ".join(", ".join(f"'{value}'" for value in allowed).rsplit(", ", 1))
            raise InvalidRequest(
                f"Invalid value: '{values[name]}'. Supported values are: {supported}.",
                param=name,
                code="invalid_value",
            )
    if "output_compression" in values:
        compression = _integer(values["output_compression"], "output_compression")
        if not 0 <= compression <= 100:
            bound = "above maximum value. Expected a value <= 100" if compression > 100 else (
                "below minimum value. Expected a value >= 0"
            )
            raise InvalidRequest(
                f"Invalid 'output_compression': integer {bound}, but got {compression} instead.",
                param="output_compression",
                code="integer_above_max_value" if compression > 100 else "integer_below_min_value",
            )
    if values.get("background") == "transparent" and values.get("output_format", "png") == "jpeg":
        raise InvalidRequest(
            "Transparent background is not supported for the jpeg output format.", param="background"
        )


def _integer(value: Any, name: str) -> int:
    """An integer parameter: a JSON integer, or in a form the digits of one."""
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
        return int(text)
    return value


def _int_param(value: Any, name: str) -> int:
    number = _integer(value, name)
    if not 1 <= number <= 10:
        raise InvalidRequest(
            f"{number} is greater than the maximum of 10 - '{name}'"
            if number > 10
            else f"{number} is less than the minimum of 1 - '{name}'",
            param=name,
        )
    return number


def _check_size(model: str, size: Any) -> str:
    allowed = SIZES[model]
    if size not in allowed:
        raise InvalidRequest(f"'{size}' is not one of {list(allowed)} - 'size'", param="size")
    return str(size)


def _check_quality(model: str, quality: Any) -> None:
    if quality is not None and quality not in QUALITIES[model]:
        raise InvalidRequest(
            f"Invalid value: '{quality}'. Supported values are: {list(QUALITIES[model])}.",
            param="quality",
            code="invalid_value",
        )


def _dimensions(size: str) -> tuple[int, int]:
    width, height = size.split("x")
    return int(width), int(height)


def _form_fields(
    recorded: RecordedRequest, allowed_fields: set[str], allowed_files: set[str]
) -> dict[str, str]:
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
        raise InvalidRequest(
            f"Invalid file '{param}': unsupported mimetype. Supported: png, jpeg, webp.", param=param
        )
    return image


def _read_png(upload: UploadedFile, param: str, *, dalle2: bool = False) -> Image.Image:
    if len(upload.data) > MAX_UPLOAD:
        raise InvalidRequest(f"Invalid input {param} - must be less than 4 MB.", param=param)
    try:
        image = Image.open(io.BytesIO(upload.data))
        image.load()
    except (UnidentifiedImageError, OSError):
        raise InvalidRequest(f"Invalid input {param} - must be a valid PNG file.", param=param) from None
    if image.format != "PNG":
        raise InvalidRequest(f"Invalid input {param} - must be a valid PNG file.", param=param)
    if dalle2:
        if image.width != image.height:
            raise InvalidRequest(f"Invalid input {param} - image must be square.", param=param)
        if image.mode not in ("RGBA", "LA", "L"):
            raise InvalidRequest(
                f"Invalid input image - format must be in ['RGBA', 'LA', 'L'], got {image.mode}.", param=param
            )
    return image


def openai_provider(
    fake: FakeOpenAI, client: httpx.AsyncClient | None = None, *, api_key: str | None = None, **options: Any
) -> OpenAIProvider:
    """An OpenAIProvider whose only network is the fake; api_key defaults to the one the fake accepts."""
    key = fake.api_key if api_key is None else api_key
    return OpenAIProvider(key, client=client or client_for(fake.app, BASE_URL), **options)
