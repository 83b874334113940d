"""create_app(): the HTTP application (API and pages) around one Container."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text
from starlette.middleware.gzip import GZipMiddleware

from imagestudio import __version__
from imagestudio.accounts.key_uses import KeyUseWriter
from imagestudio.api.router import API_PREFIX, api_router
from imagestudio.bootstrap import build
from imagestudio.config import Settings, load_settings
from imagestudio.container import Container
from imagestudio.generations.runner import EngineRunner
from imagestudio.kit.body_limit import BodyLimitMiddleware
from imagestudio.kit.errors import install_error_handlers
from imagestudio.kit.headers import SecurityHeadersMiddleware
from imagestudio.kit.metrics import RequestMetricsMiddleware
from imagestudio.kit.observability import RequestIdMiddleware
from imagestudio.kit.openapi import install_openapi
from imagestudio.openai_api.endpoints import router as openai_router
from imagestudio.openai_api.errors import install_openai_errors
from imagestudio.operations.metrics import router as metrics_router
from imagestudio.providers.refresh import ModelRefresher
from imagestudio.uicode.jobs import install as install_ui_jobs
from imagestudio.web.routes import install as install_pages

# Answers from this size on are compressed (gzip) for clients that accept it: below it, compressing costs
# the hot path (a submission's answer) more than it saves.
COMPRESS_FROM_BYTES = 16 * 1024

log = logging.getLogger(__name__)


def _current_settings(app: FastAPI, fallback: Settings) -> Settings:
    # The container's settings once it is there (tests change them on a live app).
    container = getattr(app.state, "container", None)
    return container.settings if container is not None else fallback


def create_app(settings: Settings | None = None, *, container: Container | None = None) -> FastAPI:
    settings = container.settings if container else (settings or load_settings())
    owns_container = container is None
    # The server's workers run UI generations too.
    install_ui_jobs()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nonlocal container
        if container is None:
            container = await asyncio.to_thread(build, settings)
        app.state.container = container
        # Workers inside the server (settings.workers, 0 for none) and, on PostgreSQL, the listener
        # that brings other processes' events and cancels to this one.
        engine = EngineRunner(container, concurrency=container.settings.workers)
        await engine.start()
        app.state.engine = engine
        key_uses = KeyUseWriter(container.db, container.api_key_uses)
        key_uses.start()
        # A container passed in belongs to its maker (tests), which decides when models are listed.
        refresher = None
        if owns_container:
            refresher = ModelRefresher(
                container.registry, container.db, interval=container.settings.provider_refresh_seconds
            )
            refresher.start()
        try:
            yield
        finally:
            if refresher is not None:
                await refresher.stop()
            await key_uses.stop()
            await engine.stop()
            if owns_container:
                await container.registry.aclose()
                container.close()

    app = FastAPI(
        title="imagestudio",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/v1/openapi.json",
        # /api/docs is served by the studio from a packaged Swagger UI (web/api_docs.py), not from a CDN.
        docs_url=None,
        swagger_ui_oauth2_redirect_url=None,
        redoc_url=None,
    )
    if container is not None:
        # Usable before (and without) the lifespan, e.g. by test clients.
        app.state.container = container
    install_error_handlers(app)
    install_openai_errors(app)
    install_openapi(app)
    # Large answers (a long session's detail, long lists, the API document) travel compressed to clients
    # that accept gzip; small ones, images and event streams as they are. Innermost: the other
    # middleware see the answer as sent.
    app.add_middleware(GZipMiddleware, minimum_size=COMPRESS_FROM_BYTES, compresslevel=6)
    # Uploads read their own body within IMAGESTUDIO_MAX_UPLOAD_BYTES; every other body is capped here.
    app.add_middleware(
        BodyLimitMiddleware,
        limit=lambda scope: _current_settings(scope["app"], settings).max_json_body_bytes,
        exempt={("POST", f"{API_PREFIX}/assets")},
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestMetricsMiddleware)
    # Outermost, so every log line of the request (even an error's) carries its id.
    app.add_middleware(RequestIdMiddleware, trusted=settings.trusted_proxy_networks)
    app.include_router(api_router)
    app.include_router(openai_router)
    app.include_router(metrics_router)

    @app.get("/healthz", tags=["health"])
    def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok", "version": __version__}

    readiness_failures: dict[str, str] = {}

    def _probe(name: str, check) -> str:
        """Run one readiness check; log why it fails (once per change, not at every probe)."""
        try:
            check()
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            if readiness_failures.get(name) != reason:
                log.warning("not ready: %s check failed: %s", name, reason)
            readiness_failures[name] = reason
            return "unavailable"
        if readiness_failures.pop(name, None) is not None:
            log.info("ready again: %s check passes", name)
        return "ok"

    @app.get("/readyz", tags=["health"])
    def ready() -> JSONResponse:
        """Readiness: the database answers a query and the storage accepts a write (a probe object is
        written and deleted). The reason for a failure goes to the log, not to the caller."""
        current: Container = app.state.container

        def database() -> None:
            with current.db.reading() as db:
                db.execute(text("SELECT 1"))

        checks = {"database": _probe("database", database), "storage": _probe("storage", current.storage.check)}
        ok = all(value == "ok" for value in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    install_pages(app)
    return app
