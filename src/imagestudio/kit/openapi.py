"""Rules the server enforces that FastAPI's generated OpenAPI document would not state, so that
generated clients (and schemathesis) know them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

# PostgreSQL cannot store NUL and no driver can encode a lone surrogate (see kit.text).
STORABLE_TEXT_PATTERN = "^[^\\u0000\\ud800-\\udfff]*$"


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
