"""Rules the server enforces that FastAPI's generated OpenAPI document would not state, so that
generated clients (and schemathesis) know them."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import AwareDatetime, BeforeValidator, Field

# PostgreSQL cannot store NUL (see kit.text). Lone surrogates, refused too, are not Unicode text at
# all, so JSON Schema strings cannot hold them anyway (and regex engines cannot name them).
STORABLE_TEXT_PATTERN = "^[^\\u0000]*$"


def not_null(schema: dict[str, Any]) -> None:
    """`Field(json_schema_extra=not_null)` for an optional field that may be left out but not sent as
    null ("leave it out to keep the current value")."""
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    if schema.get("default", ...) is None:
        del schema["default"]


def not_null_with(**rules: Any) -> Callable[[dict[str, Any]], None]:
    """`not_null` plus schema keywords the server checks itself (e.g. a pattern it answers with its
    own error code)."""

    def extra(schema: dict[str, Any]) -> None:
        not_null(schema)
        schema.update(rules)

    return extra


def _iso_only(value: Any) -> Any:
    # Pydantic would read "0.5" as a Unix time; the document promises RFC 3339 date-times only.
    if isinstance(value, str | int | float) and re.fullmatch(r"\s*[-+]?[0-9.eE+-]+\s*", str(value)):
        raise ValueError("must be an RFC 3339 date-time with a time zone, e.g. 2030-01-31T12:00:00Z")
    return value


DateTimeQuery = Annotated[AwareDatetime, BeforeValidator(_iso_only)]


def _integral(value: Any) -> Any:
    # JSON Schema's integer includes 3.0; strings and booleans stay refused, as the schema says.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be an integer")
    return value


# An integer as JSON Schema means it: 3 and 3.0, never "3" or true.
JsonInt = Annotated[int, BeforeValidator(_integral)]


def bounded_int(ge: int, le: int) -> Any:
    """A JsonInt within [ge, le]. The bounds sit inside the validator so the OpenAPI document states
    them as minimum and maximum (after it, they would be opaque to generated clients)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_integral)]


def _state_storable_text(node: Any) -> None:
    """Every free-text string (no pattern, format or enum of its own) says what it cannot hold."""
    if isinstance(node, dict):
        if node.get("type") == "string" and not {"pattern", "format", "enum", "const"} & node.keys():
            node["pattern"] = STORABLE_TEXT_PATTERN
        for value in node.values():
            _state_storable_text(value)
    elif isinstance(node, list):
        for value in node:
            _state_storable_text(value)


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, routes=app.routes, description=app.description
            )
            _state_storable_text(document.get("components", {}))
            _state_storable_text(document.get("paths", {}))
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
