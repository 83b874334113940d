"""Builds, once, everything a process needs: database, storage, provider registry, HTTP client, and
the notification hub, attached to the database's session factories.

The API server, `imagestudio worker` and the CLI all start here, so they share one wiring.
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError

from imagestudio import notify
from imagestudio.config import Settings
from imagestudio.container import Container
from imagestudio.db import Database, SessionLimits, make_database
from imagestudio.kit.errors import BUSY_SQLSTATES
from imagestudio.kit.observability import log_queries
from imagestudio.language import LanguageRegistry
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.providers.setup import http_client
from imagestudio.schema import prepare_schema
from imagestudio.storage import storage_from_url

log = logging.getLogger(__name__)


class ConfigurationError(RuntimeError):
    """The settings cannot work as given; the message says what to change."""


def build(settings: Settings, *, migrate_schema: bool = True) -> Container:
    shared = not settings.uses_data_dir and settings.resolved_storage_url.startswith("s3://")
    if shared and settings.secret_key is None:
        # A key generated on each machine would make links signed by one server fail on the others.
        raise ConfigurationError(
            "IMAGESTUDIO_SECRET_KEY is not set: with PostgreSQL and S3 storage every server signs and "
            "checks asset links with it, so give all of them the same value"
        )
    if settings.uses_data_dir or settings.secret_key is None:
        # The embedded default keeps its database, files and generated key in the data folder; a
        # process on PostgreSQL and S3 needs no local folder and creates none.
        settings.ensure_data_dir()
        settings.get_secret_key()
    url = settings.resolved_database_url
    db = make_database(url, limits=SessionLimits.from_settings(settings))
    if settings.log_queries:
        log_queries(db.engine)
    if migrate_schema:
        prepare_schema(db.engine, url)
    hub = notify.NotificationHub()
    notify.attach(db, hub)
    storage = storage_from_url(settings.resolved_storage_url)
    registry = ProviderRegistry.from_settings(settings)
    language = LanguageRegistry.from_settings(settings, http_client(settings))
    if migrate_schema:
        record_providers(registry, db)
    log.info(
        "imagestudio ready: database=%s storage=%s providers=%s language=%s",
        db.dialect,
        type(storage).__name__,
        ",".join(registry.names()),
        language.default_name,
    )
    return Container(settings=settings, db=db, storage=storage, registry=registry, language=language, hub=hub)


def record_providers(registry: ProviderRegistry, db: Database) -> None:
    """Writes the providers rows at start. A peer frozen mid-transaction (cut off by a partition, or
    stopped) can hold them until the database ends its session; the rows only describe providers and
    the model refresher writes them again, so a busy database must not stop this process starting."""
    try:
        registry.sync_to_database(db)
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) not in BUSY_SQLSTATES:
            raise
        log.warning("providers not recorded at start, the database is busy (%s); the model refresher will", error.orig)
