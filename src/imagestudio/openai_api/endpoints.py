"""The OpenAI-compatible Images API at /v1: point an OpenAI client's base URL at `<studio>/v1` and
use an imagestudio API key.

Each request is an ordinary durable generation (quotas, prompt filter, scopes, Idempotency-Key) in
the user's "OpenAI-compatible API" session; the HTTP request waits for its result. Past
`openai_api_timeout_seconds` it answers 504 and the generation keeps running.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from imagestudio.accounts.deps import CurrentPrincipal, RequireVerifiedEmail
from imagestudio.accounts.service import Principal
from imagestudio.assets import links
from imagestudio.assets.service import Upload, store_upload
from imagestudio.assets.upload import read_form
from imagestudio.container import Container, ContainerDep
from imagestudio.generations.schemas import GenerationOverrides, GenerationParams
from imagestudio.generations.service import request_cancel
from imagestudio.generations.submit import build_spec, check_idempotency_key, queue, user_defaults
from imagestudio.kit.errors import ApiError, FieldError
from imagestudio.kit.text import refuse_unstorable_text
from imagestudio.models import Generation, GenerationType, InputPurpose, RunStatus
from imagestudio.models.types import utcnow
from imagestudio.openai_api import service
from imagestudio.openai_api.schemas import (
    ImageData,
    ImageGenerationBody,
    ImageOptions,
    ImagesResponse,
    ModelList,
    ModelObject,
)

# Text no database can store is refused here as on /api/v1.
router = APIRouter(
    prefix="/v1", tags=["openai-compatible"], include_in_schema=False, dependencies=[Depends(refuse_unstorable_text)]
)

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
# Extras the image providers read from params.extra (OpenAI's own names).
_PASSED_THROUGH = (
    "quality",
    "background",
    "moderation",
    "output_format",
    "output_compression",
    "style",
    "input_fidelity",
)
MAX_EDIT_IMAGES = 16
_FORM_FIELDS = 20


@dataclass
class ImageJob:
    """One request of the API as the studio queues it."""

    type: GenerationType
    prompt: str
    options: ImageOptions
    extra: dict[str, Any] = field(default_factory=dict)
    images: list[Upload] = field(default_factory=list)
    mask: Upload | None = None


# ---- queueing ---------------------------------------------------------------------------------------


def _overrides(job: ImageJob, choice: service.ModelChoice | None) -> GenerationOverrides:
    width, height = service.parse_size(job.options.size)
    extra = {name: value for name in _PASSED_THROUGH if (value := job.extra.get(name)) is not None}
    if job.options.stream and job.options.partial_images:
        extra["partial_images"] = job.options.partial_images
    try:
        return GenerationOverrides(
            provider=choice.provider if choice else None,
            model=choice.model if choice else None,
            num_images=job.options.n or 1,
            width=width,
            height=height,
            params=GenerationParams(extra=extra),
        )
    except ValidationError as error:
        first = error.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "size"
        param = "size" if name in ("width", "height") else name
        raise ApiError(
            422, "validation_failed", "The request has invalid fields.", [FieldError(param, first["msg"])]
        ) from None


def _queue(container: Container, principal: Principal, job: ImageJob, key: str | None) -> uuid.UUID:
    """Queue the job as a generation (or find the one its Idempotency-Key made) and commit it."""
    user = principal.user
    with container.db.write() as db:
        choice = service.resolve_model(db, job.options.model)
        session_id = service.api_session(db, user.id)
        stored = [
            store_upload(db, container.storage, container.settings, user.id, upload)[0]
            for upload in [*job.images, *([job.mask] if job.mask else [])]
        ]
        images = stored[: len(job.images)]
        spec = build_spec(
            _overrides(job, choice),
            type=job.type,
            prompt=job.prompt,
            defaults=user_defaults(db, user.id),
            registry=container.registry,
            source_asset_id=images[0].id if images else None,
            mask_asset_id=stored[-1].id if job.mask else None,
            reference_asset_ids=[asset.id for asset in images[1:]],
        )
        generation, replay = queue(
            db,
            user=user,
            spec=spec,
            registry=container.registry,
            settings=container.settings,
            session_id=session_id,
            idempotency_key=key,
        )
        if replay:
            return generation.id
        db.commit()
        return generation.id


# ---- answering --------------------------------------------------------------------------------------


def _image_data(
    container: Container, request: Request, generation: Generation, job: ImageJob
) -> tuple[list[ImageData], list[bytes]]:
    with container.db.reading() as db:
        assets = service.outputs_of(db, generation.id)
    response_format = job.options.response_format or "b64_json"
    data: list[ImageData] = []
    encoded: list[bytes] = []
    # OpenAI's revised_prompt is the prompt the image was made from: the provider's own rewrite, else
    # the prompt the studio sent when it differs from the one written.
    sent = generation.enhanced_prompt if generation.enhanced_prompt != generation.prompt else None
    revised = generation.revised_prompt or sent
    for asset in assets:
        stored = container.storage.get(asset.storage_key)
        image = service.encode_as(stored, asset.mime_type, job.options.output_format, job.options.output_compression)
        encoded.append(image)
        if response_format == "url":
            link = links.sign_link(
                request, container.settings, container.storage, asset, container.settings.signed_link_seconds
            )
            data.append(ImageData(url=link.url, revised_prompt=revised))
        else:
            data.append(ImageData(b64_json=service.b64(image), revised_prompt=revised))
    return data, encoded


def _finished(container: Container, owner_id: uuid.UUID, generation_id: uuid.UUID) -> Generation:
    with container.db.reading() as db:
        generation = db.get(Generation, generation_id)
        assert generation is not None and generation.owner_id == owner_id
        db.expunge(generation)
    if generation.status != RunStatus.succeeded.value:
        raise service.failure_error(generation)
    return generation


def _usage(generation: Generation) -> dict | None:
    usage = generation.usage or {}
    return usage if "input_tokens" in usage or "total_tokens" in usage else None


def _response(job: ImageJob, generation: Generation, data: list[ImageData]) -> ImagesResponse:
    background = job.options.background if job.options.background in ("transparent", "opaque") else None
    return ImagesResponse(
        created=int(generation.created_at.timestamp()),
        data=data,
        background=background,
        output_format=job.options.output_format or "png",
        quality=job.options.quality,
        size=f"{generation.width}x{generation.height}",
        usage=_usage(generation),
    )


async def _await_result(
    container: Container, request: Request, principal: Principal, generation_id: uuid.UUID
) -> Generation:
    owner_id = principal.user.id
    status = await service.wait_final(
        container, owner_id, generation_id, container.settings.openai_api_timeout_seconds, request.is_disconnected
    )
    return await _settled(container, request, owner_id, generation_id, status)


async def _settled(
    container: Container, request: Request, owner_id: uuid.UUID, generation_id: uuid.UUID, status: str | None
) -> Generation:
    """The finished generation, or the error a client hears: 504 when waiting ran out (canceling it
    first when the client left and the server is told to)."""
    if status is None:
        if await request.is_disconnected() and container.settings.openai_api_cancel_on_disconnect:
            await run_in_threadpool(_cancel, container, owner_id, generation_id)
        raise ApiError(
            504,
            "timeout",
            f"The generation {generation_id} is still running; it will finish in the studio "
            f"(GET /api/v1/generations/{generation_id}).",
        )
    return await run_in_threadpool(_finished, container, owner_id, generation_id)


def _cancel(container: Container, owner_id: uuid.UUID, generation_id: uuid.UUID) -> None:
    with container.db.write() as db:
        request_cancel(db, generation_id=generation_id, owner_id=owner_id)
        db.commit()


def _sse(event: str, payload: dict) -> str:
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _partial_image(container: Container, preview: service.Preview, job: ImageJob) -> str:
    stored = container.storage.get(preview.key)
    return service.b64(
        service.encode_as(stored, "image/png", job.options.output_format, job.options.output_compression)
    )


def _image_event(prefix: str, kind: str, job: ImageJob, generation: Generation | None, **fields: Any) -> str:
    size = f"{generation.width}x{generation.height}" if generation is not None else (job.options.size or "auto")
    body = {
        "type": f"{prefix}.{kind}",
        "created_at": int((generation.created_at if generation is not None else utcnow()).timestamp()),
        "size": size,
        "quality": job.options.quality or "auto",
        "background": job.options.background or "auto",
        "output_format": job.options.output_format or "png",
        **fields,
    }
    return _sse(f"{prefix}.{kind}", body)


async def _stream(
    container: Container, request: Request, principal: Principal, generation_id: uuid.UUID, job: ImageJob, prefix: str
) -> AsyncIterator[str]:
    """OpenAI's image stream: `<prefix>.partial_image` for each intermediate picture the provider
    renders (when `partial_images` asks for them), `<prefix>.completed` for each finished image, or
    an `error` event with OpenAI's error body."""
    owner_id = principal.user.id
    last_sequence = 0
    status: str | None = None
    try:
        async for seen in service.watch(
            container, owner_id, generation_id, container.settings.openai_api_timeout_seconds, request.is_disconnected
        ):
            status = seen
            if job.options.partial_images:
                previews = await run_in_threadpool(service.previews_after, container, generation_id, last_sequence)
                for preview in previews:
                    last_sequence = preview.sequence
                    data = await run_in_threadpool(_partial_image, container, preview, job)
                    yield _image_event(
                        prefix, "partial_image", job, None, b64_json=data, partial_image_index=preview.number
                    )
        generation = await _settled(container, request, owner_id, generation_id, status)
        _data, images = await run_in_threadpool(_image_data, container, request, generation, job)
    except ApiError as error:
        yield _sse(
            "error", {"type": "error", "error": {"message": error.detail, "type": "server_error", "code": error.code}}
        )
        return
    for image in images:
        yield _image_event(prefix, "completed", job, generation, b64_json=service.b64(image), usage=_usage(generation))


async def _run(
    container: Container, request: Request, principal: Principal, job: ImageJob, key: str | None, stream_prefix: str
) -> Response:
    if job.options.response_format == "url" and job.options.output_format not in (None, "png"):
        raise ApiError(
            422,
            "validation_failed",
            "The request has invalid fields.",
            [FieldError("output_format", "Links serve the stored PNG; ask for b64_json to get another format.")],
        )
    generation_id = await run_in_threadpool(_queue, container, principal, job, check_idempotency_key(key))
    if job.options.stream:
        events = _stream(container, request, principal, generation_id, job, stream_prefix)
        return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    generation = await _await_result(container, request, principal, generation_id)
    data, _images = await run_in_threadpool(_image_data, container, request, generation, job)
    answer = _response(job, generation, data)
    return JSONResponse(answer.model_dump(exclude_none=True))


@router.post("/images/generations", dependencies=[RequireVerifiedEmail])
async def create_images(
    body: ImageGenerationBody,
    request: Request,
    principal: CurrentPrincipal,
    container: ContainerDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """OpenAI's `images.generate`."""
    job = ImageJob(type=GenerationType.text2img, prompt=body.prompt, options=body, extra=body.model_dump())
    return await _run(container, request, principal, job, idempotency_key, "image_generation")


# ---- multipart: edits and variations ------------------------------------------------------------------


def _form_options(form: FormData, allowed: frozenset[str]) -> dict[str, Any]:
    """The text fields of a multipart form as typed values (forms carry only strings)."""
    values: dict[str, Any] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile) or name in ("image", "image[]", "mask"):
            continue
        if name not in allowed:
            raise ApiError(
                400,
                "unknown_parameter",
                f"Unrecognized request argument supplied: {name}",
                [FieldError(name, "Unknown field.")],
            )
        if name in values:
            raise ApiError(
                400, "invalid_value", f"'{name}' is given more than once.", [FieldError(name, "Given more than once.")]
            )
        text = value.strip()
        if name in ("n", "output_compression", "partial_images"):
            if not text.isdigit():
                raise ApiError(
                    400,
                    "invalid_type",
                    f"Invalid '{name}': expected an integer.",
                    [FieldError(name, "Expected an integer.")],
                )
            values[name] = int(text)
        elif name == "stream":
            if text.lower() not in ("true", "false"):
                raise ApiError(
                    400,
                    "invalid_type",
                    "Invalid 'stream': expected true or false.",
                    [FieldError(name, "Expected a boolean.")],
                )
            values[name] = text.lower() == "true"
        else:
            values[name] = text
    return values


async def _form_uploads(form: FormData, max_bytes: int) -> tuple[list[Upload], Upload | None]:
    images: list[Upload] = []
    mask: Upload | None = None
    for name, value in form.multi_items():
        if name not in ("image", "image[]", "mask"):
            continue
        if not isinstance(value, UploadFile):
            raise ApiError(400, "invalid_value", f"'{name}' must be a file.", [FieldError(name, "Attach a file.")])
        data = await value.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise ApiError(
                413,
                "upload_too_large",
                f"Each image may be at most {max_bytes} bytes.",
                [FieldError(name, "Too large.")],
            )
        if name == "mask":
            if mask is not None:
                raise ApiError(400, "invalid_value", "Only one mask.", [FieldError("mask", "Given more than once.")])
            mask = Upload(data=data, filename=value.filename, purpose=InputPurpose.mask, session_id=None)
        else:
            purpose = InputPurpose.init if not images else InputPurpose.reference
            images.append(Upload(data=data, filename=value.filename, purpose=purpose, session_id=None))
    if not images:
        raise ApiError(
            400, "missing_required_parameter", "Attach at least one image.", [FieldError("image", "Required.")]
        )
    return images, mask


def _validated(model: type[ImageOptions], values: dict[str, Any]) -> ImageOptions:
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or "body"
        code = "missing_required_parameter" if first["type"] == "missing" else "invalid_value"
        raise ApiError(400, code, f"Invalid '{param}': {first['msg']}", [FieldError(param, first["msg"])]) from None


_EDIT_FIELDS = frozenset(ImageGenerationBody.model_fields) - {"style"}
_VARIATION_FIELDS = frozenset({"model", "n", "size", "response_format", "user"})


@router.post("/images/edits", dependencies=[RequireVerifiedEmail])
async def edit_images(
    request: Request, principal: CurrentPrincipal, container: ContainerDep, idempotency_key: IdempotencyKey = None
) -> Response:
    """OpenAI's `images.edit`: one or more `image` (or `image[]`) files, an optional `mask`, a prompt."""
    max_bytes = container.settings.max_upload_bytes
    form = await read_form(
        request,
        max_bytes * (MAX_EDIT_IMAGES + 1),
        max_files=MAX_EDIT_IMAGES + 1,
        max_fields=_FORM_FIELDS,
        max_field_bytes=16_384,
    )
    try:
        values = _form_options(form, _EDIT_FIELDS)
        images, mask = await _form_uploads(form, max_bytes)
    finally:
        await form.close()
    if len(images) > MAX_EDIT_IMAGES:
        raise ApiError(400, "invalid_value", f"At most {MAX_EDIT_IMAGES} images.", [FieldError("image", "Too many.")])
    body = _validated(ImageGenerationBody, values)
    assert isinstance(body, ImageGenerationBody)
    job = ImageJob(
        type=GenerationType.inpaint if mask is not None else GenerationType.img2img,
        prompt=body.prompt,
        options=body,
        extra=body.model_dump(),
        images=images,
        mask=mask,
    )
    return await _run(container, request, principal, job, idempotency_key, "image_edit")


@router.post("/images/variations", dependencies=[RequireVerifiedEmail])
async def image_variations(
    request: Request, principal: CurrentPrincipal, container: ContainerDep, idempotency_key: IdempotencyKey = None
) -> Response:
    """OpenAI's `images.create_variation`: one `image` file."""
    form = await read_form(request, container.settings.max_upload_bytes, max_files=1, max_fields=_FORM_FIELDS)
    try:
        values = _form_options(form, _VARIATION_FIELDS)
        images, mask = await _form_uploads(form, container.settings.max_upload_bytes)
    finally:
        await form.close()
    if mask is not None:
        raise ApiError(400, "unknown_parameter", "Variations take no mask.", [FieldError("mask", "Unknown field.")])
    options = _validated(ImageOptions, values)
    job = ImageJob(type=GenerationType.variation, prompt="", options=options, images=images)
    return await _run(container, request, principal, job, idempotency_key, "image_generation")


# ---- models -------------------------------------------------------------------------------------------


def _models(container: Container) -> list[service.ListedModel]:
    with container.db.reading() as db:
        return service.list_models(db)


@router.get("/models", response_model=ModelList)
async def list_models(principal: CurrentPrincipal, container: ContainerDep) -> ModelList:
    """The image models you may use: `provider/model` ids and each provider's bare name."""
    listed = await run_in_threadpool(_models, container)
    return ModelList(data=[ModelObject(id=item.id, created=item.created, owned_by=item.provider) for item in listed])


@router.get("/models/{model_id:path}", response_model=ModelObject)
async def get_model(model_id: str, principal: CurrentPrincipal, container: ContainerDep) -> ModelObject:
    listed = await run_in_threadpool(_models, container)
    for item in listed:
        if item.id == model_id:
            return ModelObject(id=item.id, created=item.created, owned_by=item.provider)
    raise service.model_not_found(model_id)
