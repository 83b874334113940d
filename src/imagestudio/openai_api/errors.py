"""Errors under /v1 in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

The rest of the studio answers problem+json; these handlers take over for paths under /v1 only and
hand everything else to the handlers they replace, so one exception raised by a shared service reads
right to both kinds of client. Invalid fields are 400 with `param` naming the field, as OpenAI does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagestudio.kit.errors import ApiError, field_path
from imagestudio.kit.headers import SECURITY_HEADERS

log = logging.getLogger(__name__)

OPENAI_PREFIX = "/v1"
Handler = Callable[[Request, Exception], Awaitable[Response]]

_TYPES = {401: "invalid_request_error", 403: "permission_error", 429: "rate_limit_error"}


def is_openai_path(path: str) -> bool:
    return path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/")


def openai_error(
    status: int,
    message: str,
    *,
    code: str | None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    error_type = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    body = {"error": {"message": message, "type": error_type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _from_api_error(error: ApiError) -> JSONResponse:
    status = 400 if error.status == 422 else error.status
    param = error.fields[0].field if error.fields else None
    message = error.detail
    if error.fields and error.detail.startswith("The request has invalid fields"):
        message = f"Invalid '{param}': {error.fields[0].message}"
    return openai_error(status, message, code=error.code, param=param, headers=error.headers)


def _from_validation(error: RequestValidationError) -> JSONResponse:
    errors = list(error.errors())
    if any(item.get("type") == "json_invalid" for item in errors):
        return openai_error(400, "We could not parse the JSON body of your request.", code="invalid_json")
    first: dict[str, Any] = errors[0] if errors else {}
    location = list(first.get("loc", ()))
    if first.get("type") == "extra_forbidden":
        name = str(location[-1]) if location else "body"
        return openai_error(
            400, f"Unrecognized request argument supplied: {name}", code="unknown_parameter", param=name
        )
    if first.get("type") == "missing" and location[:1] == ["body"] and len(location) == 1:
        return openai_error(400, "The request needs a JSON body.", code="missing_body")
    param = field_path(location)
    message = f"Invalid '{param}': {first.get('msg', 'is invalid')}"
    code = "missing_required_parameter" if first.get("type") == "missing" else "invalid_value"
    return openai_error(400, message, code=code, param=param)


def _from_http(error: StarletteHTTPException) -> JSONResponse:
    if error.status_code == 404:
        return openai_error(404, "Unknown request URL. Check the path and the method.", code="unknown_url")
    if error.status_code == 405:
        return openai_error(405, "This method is not allowed on this URL.", code="method_not_allowed")
    return openai_error(error.status_code, str(error.detail), code=None, headers=getattr(error, "headers", None))


def _translate(error: Exception, request: Request) -> JSONResponse:
    if isinstance(error, ApiError):
        return _from_api_error(error)
    if isinstance(error, RequestValidationError):
        return _from_validation(error)
    if isinstance(error, StarletteHTTPException):
        return _from_http(error)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return openai_error(
        500, "The server had an error processing your request; it has been logged.", code=None, headers=SECURITY_HEADERS
    )


def install_openai_errors(app: FastAPI) -> None:
    """Answer errors under /v1 in OpenAI's shape; call after the studio's own handlers are installed."""
    for kind in (ApiError, RequestValidationError, StarletteHTTPException, Exception):
        previous: Handler = app.exception_handlers[kind]

        async def handler(request: Request, error: Exception, previous: Handler = previous) -> Response:
            if is_openai_path(request.url.path):
                return _translate(error, request)
            return await previous(request, error)

        app.add_exception_handler(kind, handler)
