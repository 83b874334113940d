"""Logs an operator can search: a request id on every request, JSON lines on demand, SQL timings.

- `IMAGESTUDIO_LOG_FORMAT=json` writes one JSON object per line with `time`, `level`, `logger`,
  `message` and, where known, `request_id`, `user_id` and `generation_id` (from context variables
  set by the request-id middleware, authentication and the worker).
- Every HTTP answer carries `X-Request-ID`: the one a trusted proxy sent, or a new one.
- `IMAGESTUDIO_LOG_QUERIES=true` logs each SQL statement with its duration (logger
  `imagestudio.sql`), parameters left out so secrets and prompts stay out of the log.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, event
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagestudio.kit.asgi import HttpMiddleware

# What the log knows about the work in hand: request_id, user_id, generation_id. A dict shared by
# reference, so authentication running in a worker thread can add the user to its request's context.
log_context: ContextVar[dict[str, str] | None] = ContextVar("log_context", default=None)
_CONTEXT_FIELDS = ("request_id", "user_id", "generation_id")

REQUEST_ID_HEADER = "x-request-id"
SCOPE_KEY = "imagestudio.log_context"
# What a proxy may hand us as a request id: short and printable, so it is safe in a log line.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

sql_log = logging.getLogger("imagestudio.sql")


class ContextFilter(logging.Filter):
    """Copies the context variables onto each record, for both formats."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = log_context.get() or {}
        for name in _CONTEXT_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, context.get(name))
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                document[name] = value
        for key, value in record.__dict__.items():
            if key in _STANDARD_RECORD_FIELDS or key in _CONTEXT_FIELDS or key in document or key.startswith("_"):
                continue
            document[key] = value if isinstance(value, str | int | float | bool) or value is None else str(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_format: str = "text", level: str = "info", *, force: bool = False) -> None:
    """Our handler on the root logger, in the chosen format, with the request context on every record.

    Like logging.basicConfig, it leaves a logging setup made by someone else alone (an embedding
    application, a test runner) unless `force`; it always replaces a handler it added before."""
    root = logging.getLogger()
    foreign = [handler for handler in root.handlers if not getattr(handler, "_imagestudio", False)]
    if foreign and not force:
        return
    for existing in root.handlers[:]:
        if getattr(existing, "_imagestudio", False):
            root.removeHandler(existing)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    handler._imagestudio = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())


def log_queries(engine: Engine) -> Callable[[], None]:
    """Log every statement this engine runs, with its duration in milliseconds. Answers a function
    that stops it."""

    def start(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
        context._imagestudio_started = time.perf_counter()

    def done(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
        elapsed = (time.perf_counter() - getattr(context, "_imagestudio_started", time.perf_counter())) * 1000
        sql_log.info("%.2f ms %s", elapsed, " ".join(statement.split()), extra={"duration_ms": round(elapsed, 3)})

    event.listen(engine, "before_cursor_execute", start)
    event.listen(engine, "after_cursor_execute", done)

    def stop() -> None:
        event.remove(engine, "before_cursor_execute", start)
        event.remove(engine, "after_cursor_execute", done)

    return stop


@contextmanager
def logged_as(**values: object) -> Iterator[None]:
    """Add to the log context for the duration of a block (e.g. the generation a worker runs)."""
    merged = {**(log_context.get() or {}), **{k: str(v) for k, v in values.items() if v is not None}}
    token = log_context.set(merged)
    try:
        yield
    finally:
        log_context.reset(token)


def note_user(user_id: object) -> None:
    """Record who the current request is from (called by authentication, from any thread)."""
    context = log_context.get()
    if context is not None:
        context["user_id"] = str(user_id)


class RequestIdMiddleware(HttpMiddleware):
    """Names every request: the X-Request-ID of a trusted proxy, or a fresh one; echoed in the answer."""

    def __init__(self, app: ASGIApp, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> None:
        super().__init__(app)
        self.trusted = trusted

    def _from_proxy(self, scope: Scope) -> str | None:
        client = scope.get("client")
        try:
            peer = ipaddress.ip_address(client[0]) if client else None
        except ValueError:
            peer = None
        if peer is None or not any(peer in network for network in self.trusted):
            return None
        for name, value in scope.get("headers", []):
            if name == REQUEST_ID_HEADER.encode():
                text = value.decode("latin-1")
                return text if _REQUEST_ID.match(text) else None
        return None

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = self._from_proxy(scope) or uuid.uuid4().hex
        context = {"request_id": request_id}
        # Kept in the scope too: the last-resort 500 handler runs outside this middleware.
        scope[SCOPE_KEY] = context
        token = log_context.set(context)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [item for item in message.get("headers", []) if item[0].lower() != REQUEST_ID_HEADER.encode()]
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log_context.reset(token)
