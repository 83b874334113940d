"""Builds, once, everything a process needs: database, storage, provider registry, HTTP client, and
the notification hub, attached to the database's session factories.

The API server, `imagestudio worker` and the CLI all start here, so they share one wiring.
"""

from __future__ import annotations

import logging

from imagestudio import notify
from imagestudio.config import Settings
from imagestudio.container import Container
from imagestudio.db import make_database
from imagestudio.kit.observability import log_queries
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.schema import prepare_schema
from imagestudio.storage import storage_from_url

log = logging.getLogger(__name__)


def build(settings: Settings, *, migrate_schema: bool = True) -> Container:
    settings.ensure_data_dir()
    settings.get_secret_key()
    url = settings.resolved_database_url
    db = make_database(url)
    if settings.log_queries:
        log_queries(db.engine)
    if migrate_schema:
        prepare_schema(db.engine, url)
    hub = notify.NotificationHub()
    notify.attach(db, hub)
    storage = storage_from_url(settings.resolved_storage_url)
    registry = ProviderRegistry.from_settings(settings)
    if migrate_schema:
        registry.sync_to_database(db)
    log.info(
        "imagestudio ready: database=%s storage=%s providers=%s",
        db.dialect,
        type(storage).__name__,
        ",".join(registry.names()),
    )
    return Container(settings=settings, db=db, storage=storage, registry=registry, hub=hub)
