"""Reading a multipart upload from the request within a byte limit.

FastAPI's own form handling spools the whole body before the endpoint runs, whatever its size. Here
the body is counted as it arrives and reading stops with 413 the moment it passes the limit, so
neither a Content-Length that lies nor a chunked body without one can push more through.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from imagestudio.assets.service import Upload
from imagestudio.kit.errors import ApiError, FieldError
from imagestudio.models import InputPurpose

# Room for the multipart framing and the small text fields around the file.
FORM_OVERHEAD_BYTES = 64 * 1024
# Text fields are short (a purpose, a UUID).
MAX_FIELD_BYTES = 1024

UPLOAD_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "purpose"],
                    "additionalProperties": False,
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "A PNG, JPEG or WebP image."},
                        "purpose": {"type": "string", "enum": [purpose.value for purpose in InputPurpose]},
                        "session_id": {"type": "string", "format": "uuid"},
                    },
                }
            }
        },
    }
}


def _too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "upload_too_large",
        f"The upload is larger than the limit of {limit} bytes.",
        [FieldError("file", f"At most {limit} bytes.")],
    )


def _invalid(field: str, message: str) -> ApiError:
    return ApiError(422, "validation_failed", "The request has invalid fields.", [FieldError(field, message)])


async def _limited(stream: AsyncIterator[bytes], body_limit: int, file_limit: int) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > body_limit:
            raise _too_large(file_limit)
        yield chunk


async def read_form(
    request: Request, max_bytes: int, *, max_files: int = 1, max_fields: int = 4, max_field_bytes: int = MAX_FIELD_BYTES
) -> FormData:
    """The multipart form of `request`, refusing with 413 once the body passes max_bytes of files
    (plus framing). The caller closes the form."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "Send the upload as multipart/form-data.")
    body_limit = max_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad_request", "The Content-Length header is not a number.")
        if int(declared) > body_limit:
            raise _too_large(max_bytes)
    parser = MultiPartParser(
        request.headers,
        _limited(request.stream(), body_limit, max_bytes),
        max_files=max_files,
        max_fields=max_fields,
        max_part_size=max_field_bytes,
    )
    try:
        return await parser.parse()
    except MultiPartException as error:
        raise ApiError(400, "malformed_body", f"The multipart body is malformed: {error}") from None
    except ClientDisconnect:
        raise ApiError(400, "bad_request", "The upload was interrupted.") from None


async def read_upload(request: Request, max_bytes: int) -> Upload:
    """The upload in `request` (fields file, purpose, session_id), refusing more than max_bytes of file."""
    form = await read_form(request, max_bytes)
    try:
        for name in ("file", "purpose", "session_id"):
            if len(form.getlist(name)) > 1:
                raise _invalid(name, "Given more than once.")
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise _invalid("file", "Attach the image as a file part named 'file'.")
        data = await file.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise _too_large(max_bytes)
        purpose_value = form.get("purpose")
        if not isinstance(purpose_value, str):
            raise _invalid("purpose", "Required: init, mask, reference or attachment.")
        try:
            purpose = InputPurpose(purpose_value.strip())
        except ValueError:
            raise _invalid("purpose", "Must be init, mask, reference or attachment.") from None
        session_value = form.get("session_id")
        session_id = None
        if isinstance(session_value, str):
            # As the OpenAPI document says: a UUID when present (leave the field out for none).
            try:
                session_id = uuid.UUID(session_value.strip())
            except ValueError:
                raise _invalid("session_id", "Must be a session id (a UUID).") from None
        elif session_value is not None:
            raise _invalid("session_id", "Must be a session id (a UUID), not a file.")
        return Upload(data=data, filename=file.filename, purpose=purpose, session_id=session_id)
    finally:
        await form.close()
