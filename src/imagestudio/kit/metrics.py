"""Prometheus metrics this process records (HTTP requests, generations it ran, worker heartbeats).

Figures about the whole cluster (queue depth, storage bytes) are read from the database when
/metrics is scraped (see observability_endpoints); these are the ones only the process that did
the work can know. Names follow Prometheus conventions (`_seconds`, `_total`).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import Message, Receive, Scope, Send

from imagestudio.kit.asgi import HttpMiddleware

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

HTTP_REQUESTS = Histogram(
    "imagestudio_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template and status.",
    ("method", "route", "status"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
GENERATION_DURATION = Histogram(
    "imagestudio_generation_duration_seconds",
    "From a worker starting a generation to its final status, by provider, type and status.",
    ("provider", "type", "status"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
GENERATION_PICKUP = Histogram(
    "imagestudio_generation_pickup_seconds",
    "From a generation being queued to a worker starting it, by provider and type.",
    ("provider", "type"),
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
GENERATION_FAILURES = Counter(
    "imagestudio_generation_failures_total",
    "Generations that failed for good, by provider and error code.",
    ("provider", "code"),
    registry=REGISTRY,
)
WORKER_HEARTBEAT = Gauge(
    "imagestudio_worker_heartbeat_timestamp_seconds",
    "When each worker of this process last completed its loop (Unix time): a stale one is stuck.",
    ("worker",),
    registry=REGISTRY,
)


def observe_pickup(provider: str, generation_type: str, seconds: float) -> None:
    GENERATION_PICKUP.labels(provider, generation_type).observe(max(0.0, seconds))


def observe_finished(provider: str, generation_type: str, status: str, seconds: float, error_code: str | None) -> None:
    GENERATION_DURATION.labels(provider, generation_type, status).observe(max(0.0, seconds))
    if status == "failed":
        GENERATION_FAILURES.labels(provider, error_code or "unknown").inc()


def heartbeat(worker_id: str) -> None:
    WORKER_HEARTBEAT.labels(worker_id).set(time.time())


def route_template(scope: Scope) -> str:
    """The matched route's full path template, e.g. /api/v1/generations/{generation_id}."""
    # FastAPI keeps the effective route (with the prefixes of included routers) in its scope entry;
    # the route object alone knows only its own router's part of the path.
    effective = scope.get("fastapi", {}).get("effective_route_context")
    path = getattr(effective, "path", None) or getattr(scope.get("route"), "path", None)
    return path or "unmatched"


class RequestMetricsMiddleware(HttpMiddleware):
    """Times each HTTP request and labels it by its route template (never the raw path: ids would
    make a series per object)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            HTTP_REQUESTS.labels(scope["method"], route_template(scope), str(status)).observe(
                time.perf_counter() - started
            )
