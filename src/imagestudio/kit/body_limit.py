"""A cap on request bodies, as a plain ASGI middleware.

Without it a JSON endpoint reads whatever arrives (a 60 MB body padded with whitespace parses fine).
The body is counted as it arrives: past the limit the answer is 413 `content_too_large` at once and
the rest is never read, whether the Content-Length was honest, lying or absent (chunked). Routes
that read their own body within their own limit (uploads) are exempt.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagestudio.kit.errors import problem_response


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, limit: Callable[[Scope], int], exempt: Collection[tuple[str, str]] = ()
    ) -> None:
        """`limit` answers the byte limit for a request (read per request, so settings may change);
        `exempt` holds (method, path) pairs that enforce their own limit."""
        self.app = app
        self.limit = limit
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.exempt:
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit)
            return
        # Read the whole body (it is at most `limit` bytes) before the application sees any of it.
        messages: list[Message] = []
        total = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > limit:
                await _refuse(scope, receive, send, limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = problem_response(
        413,
        "content_too_large",
        f"The request body is larger than the limit of {limit} bytes.",
        headers={"Connection": "close"},
    )
    await response(scope, receive, send)
