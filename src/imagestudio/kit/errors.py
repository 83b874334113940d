"""Every error the API answers is `application/problem+json` (RFC 9457) with a stable `code`.

Services and endpoints raise `ApiError` or one of its kinds (`NotFound`, `Invalid`, `Conflict`,
`TooMany`), never a response: the one handler installed here renders them. Request validation,
routing errors (404, 405) and unexpected exceptions are mapped here too, so clients only ever see
one error shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagestudio.kit.headers import SECURITY_HEADERS
from imagestudio.kit.observability import SCOPE_KEY as LOG_CONTEXT_KEY
from imagestudio.kit.observability import logged_as

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:imagestudio:problem:"

# Codes for errors raised by the framework rather than by our code.
_STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "content_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

# The problem document as the OpenAPI description shows it (every 4xx answer of the API).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "urn:imagestudio:problem:<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "What went wrong, for people."},
        "code": {"type": "string", "description": "What went wrong, for programs: stable."},
        "errors": {
            "type": "array",
            "description": "The fields at fault, when there are any.",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {
        "description": "A problem document (RFC 9457) with a stable `code`.",
        "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
    }
}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class ApiError(Exception):
    """An error answered as a problem document: `raise ApiError(404, "not_found", "No such project.")`."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        fields: Sequence[FieldError] | None = None,
        headers: Mapping[str, str] | None = None,
        title: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.fields = list(fields or [])
        self.headers = dict(headers or {})
        self.title = title


class NotFound(ApiError):
    """No such object: the answer for objects that do not exist and for objects of other users alike."""

    def __init__(self, what: str = "object") -> None:
        super().__init__(404, "not_found", f"No such {what}.")


class Invalid(ApiError):
    """A request field at fault (422 unless a status says otherwise); `errors` names the field."""

    def __init__(
        self,
        field: str,
        message: str,
        *,
        code: str = "validation_failed",
        detail: str = "The request has invalid fields.",
        status: int = 422,
    ) -> None:
        super().__init__(status, code, detail, [FieldError(field, message)])
        self.field = field


class Conflict(ApiError):
    """The request conflicts with what exists (409)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(409, code, detail)


class TooMany(ApiError):
    """Too many requests (429): the client may try again after `retry_after` seconds."""

    def __init__(self, code: str, detail: str, retry_after: int) -> None:
        self.retry_after = max(1, retry_after)
        super().__init__(429, code, detail, headers={"Retry-After": str(self.retry_after)})


def not_found(what: str = "object") -> NotFound:
    return NotFound(what)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    status: int,
    code: str,
    detail: str,
    *,
    fields: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
    title: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title or _title(status),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if fields:
        body["errors"] = [{"field": item.field, "message": item.message} for item in fields]
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_MEDIA_TYPE)


def field_path(location: Sequence[str | int]) -> str:
    """`("body", "params", "steps")` -> `params.steps`; query, path and header fields keep their source."""
    parts = list(location)
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(str(part) for part in parts) or "body"


def _validation_fields(errors: Sequence[Mapping[str, Any]]) -> list[FieldError]:
    fields = []
    for error in errors:
        message = str(error.get("msg", "is invalid"))
        if error.get("type") == "extra_forbidden":
            message = "Unknown field."
        fields.append(FieldError(field=field_path(error.get("loc", ())), message=message))
    return fields


async def _api_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return problem_response(
        error.status, error.code, error.detail, fields=error.fields, headers=error.headers, title=error.title
    )


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = list(error.errors())
    if any(item.get("type") == "json_invalid" for item in errors):
        return problem_response(400, "malformed_body", "The request body is not valid JSON.")
    return problem_response(
        422, "validation_failed", "The request has invalid fields.", fields=_validation_fields(errors)
    )


def _allowed_methods(request: Request) -> str | None:
    """Every method the API document lists for this path. (Starlette names only those of the first
    route that matched the path, while each method of a path is a route of its own here.)"""
    paths = request.app.openapi().get("paths", {})
    for template, operations in paths.items():
        pattern = re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, request.url.path):
            return ", ".join(sorted(method.upper() for method in operations if method.upper() in _HTTP_METHODS))
    return None


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    status = error.status_code
    code = _STATUS_CODES.get(status, "error")
    headers = dict(getattr(error, "headers", None) or {})
    if status == 404:
        detail = "No such resource."
    elif status == 405:
        detail = "This method is not allowed on this resource."
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    else:
        detail = str(error.detail) if error.detail else _title(status)
    return problem_response(status, code, detail, headers=headers)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    # The traceback goes to the log, never to the client. This runs outside the middleware stack, so
    # it restores the request's log context and sets the headers the middlewares would have set.
    context = request.scope.get(LOG_CONTEXT_KEY) or {}
    with logged_as(**context):
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    headers = dict(SECURITY_HEADERS)
    if "request_id" in context:
        headers["X-Request-ID"] = context["request_id"]
    return problem_response(
        500, "internal_error", "Something went wrong on our side; the error has been logged.", headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
