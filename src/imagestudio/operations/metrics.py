"""GET /metrics: Prometheus text for this process's own metrics (kit.metrics) and the cluster's state
read from the database at scrape time (queue depth by status, the oldest waiting generation, expired
leases, stored bytes).

Allowed with `Authorization: Bearer <IMAGESTUDIO_METRICS_TOKEN>`, or from the addresses in
IMAGESTUDIO_METRICS_ADDRESSES (loopback by default; behind trusted proxies the client's real address
counts, so a proxy on the same machine does not open it to the world).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterator

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from imagestudio.config import Settings
from imagestudio.container import ContainerDep
from imagestudio.db import Database
from imagestudio.kit.errors import ApiError
from imagestudio.kit.http import client_address
from imagestudio.kit.metrics import REGISTRY
from imagestudio.models import Asset, Generation, RunStatus, User
from imagestudio.models.types import utcnow

router = APIRouter(tags=["health"])


class ClusterCollector(Collector):
    """What every process sees alike, read in one short transaction per scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        with self.db.reading() as session:
            by_status = dict(session.execute(select(Generation.status, func.count()).group_by(Generation.status)).all())
            oldest = session.scalar(
                select(func.min(Generation.created_at)).where(
                    Generation.status == RunStatus.queued.value, Generation.run_after <= now
                )
            )
            expired = session.scalar(
                select(func.count()).where(
                    Generation.status == RunStatus.processing.value, Generation.lease_expires_at < now
                )
            )
            stored = dict(
                session.execute(
                    select(Asset.kind, func.coalesce(func.sum(Asset.bytes), 0))
                    .where(Asset.deleted_at.is_(None))
                    .group_by(Asset.kind)
                ).all()
            )
            users = session.scalar(select(func.count()).select_from(User))
        queue = GaugeMetricFamily("imagestudio_generations", "Generations by status.", labels=["status"])
        for status in RunStatus:
            queue.add_metric([status.value], by_status.get(status.value, 0))
        yield queue
        yield GaugeMetricFamily(
            "imagestudio_queue_oldest_waiting_seconds",
            "Age of the oldest generation ready to run and not yet picked up (0 when none waits).",
            value=(now - oldest).total_seconds() if oldest else 0.0,
        )
        yield GaugeMetricFamily(
            "imagestudio_generations_lease_expired",
            "Generations still processing whose worker's lease has run out (the reaper requeues them).",
            value=expired or 0,
        )
        storage = GaugeMetricFamily("imagestudio_storage_bytes", "Bytes of stored images, by kind.", labels=["kind"])
        for kind in ("output", "upload"):
            storage.add_metric([kind], int(stored.get(kind, 0)))
        yield storage
        yield GaugeMetricFamily("imagestudio_users", "Accounts.", value=users or 0)


def _allowed(request: Request, settings: Settings) -> bool:
    token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(client_address(request, settings))
    except ValueError:
        return False
    return any(address in network for network in settings.metrics_networks)


def _render(db: Database) -> bytes:
    cluster = CollectorRegistry(auto_describe=False)
    cluster.register(ClusterCollector(db))
    return generate_latest(REGISTRY) + generate_latest(cluster)


@router.get("/metrics", response_class=Response, include_in_schema=False)
async def metrics(request: Request, container: ContainerDep) -> Response:
    """Prometheus text exposition."""
    if not _allowed(request, container.settings):
        raise ApiError(
            401,
            "metrics_forbidden",
            "Send the metrics token, or scrape from an allowed address.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    body = await run_in_threadpool(_render, container.db)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
