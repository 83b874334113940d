"""Refuse text no database can store, before any endpoint sees it.

PostgreSQL rejects NUL characters in text (and in JSON), and neither database driver can encode a
lone UTF-16 surrogate, which Python's JSON parser lets through from "\\ud800" escapes. Either would
surface as a server error deep inside a request; here they are a 422 naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from imagestudio.kit.errors import ApiError, FieldError

_MESSAGE = "Contains a character that cannot be stored (NUL or an unpaired surrogate)."


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_unstorable(value: Any, path: str) -> str | None:
    """The path of the first string (key or value) in a parsed JSON document that cannot be stored."""
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not _storable(item):
                return where or "body"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{where}.{key}" if where else str(key)
                if not _storable(key):
                    return where or "body"
                stack.append((child, child_path))
        elif isinstance(item, list):
            stack.extend((child, f"{where}.{index}" if where else str(index)) for index, child in enumerate(item))
    return None


def _refuse(field: str) -> ApiError:
    return ApiError(422, "validation_failed", "The request has invalid fields.", [FieldError(field, _MESSAGE)])


async def refuse_unstorable_text(request: Request) -> None:
    """A router dependency: query parameters and JSON bodies must hold storable text only."""
    for name, value in request.query_params.multi_items():
        if not _storable(name) or not _storable(value):
            raise _refuse(f"query.{name}" if _storable(name) else "query")
    content_type = request.headers.get("content-type", "").lower()
    if "json" not in content_type:
        return  # multipart uploads are read (within their limit) by their endpoint
    if getattr(request.scope.get("route"), "body_field", None) is None:
        return  # the route reads no body: whatever was sent is ignored, so it is not read here either
    body = await request.body()  # already read (and kept) by FastAPI for a route with a body
    if b"\\u" not in body and b"\x00" not in body:
        return  # neither a NUL nor a surrogate can hide in this document
    try:
        document = json.loads(body)
    except ValueError:
        return  # the endpoint answers malformed JSON itself
    where = _first_unstorable(document, "")
    if where is not None:
        raise _refuse(where)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, with the user's % and _ taken literally (escape "\\")."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
