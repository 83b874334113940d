"""The real server on a free 127.0.0.1 port (uvicorn in a thread, in-process worker) and headless Chromium.

Browser tests start the same app `imagestudio serve` runs, on a migrated SQLite or PostgreSQL database, with
the built-in renderer; then drive Debian's Chromium through Playwright.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, BrowserContext, Page

from imagestudio.accounts import service
from imagestudio.app import create_app
from imagestudio.config import Settings, load_settings
from imagestudio.container import Container
from tests.web.axe import assert_accessible

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FAST_HASHING = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}
DESKTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


def studio_settings(database_url: str, data_dir: Path, **values: Any) -> Settings:
    fields: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "secret_key": "browser-test-secret",
        "signup_mode": "admin",
        "workers": 1,
        **FAST_HASHING,
    }
    fields.update(values)
    return load_settings(**fields)


class LiveServer:
    """uvicorn serving create_app(settings) from a thread, on a socket bound before it starts (no port race)."""

    def __init__(self, settings: Settings, container: Container | None = None) -> None:
        self.settings = settings
        # A container made by the test (e.g. with an extra provider) is the test's to close.
        self.app = create_app(settings) if container is None else create_app(container=container)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the studio server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.socket.close()

    @property
    def container(self):
        return self.app.state.container

    def create_user(self, *, admin: bool = False, email: str | None = None) -> str:
        """An account written straight to the database (like `imagestudio users create`); answers its email."""
        email = email or f"user-{uuid.uuid4().hex[:10]}@example.test"
        with self.container.db.writing() as db:
            service.create_user(
                db, self.settings, email=email, password=PASSWORD, display_name="", is_admin=admin
            )
        return email


@contextmanager
def running(settings: Settings, container: Container | None = None) -> Iterator[LiveServer]:
    server = LiveServer(settings, container).start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Visit:
    """One browser context (cookies, viewport, colour scheme) with a page, collecting the page's errors."""

    server: LiveServer
    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def goto(self, path: str) -> None:
        """Opens a page and waits until its script has wired it up."""
        self.page.goto(self.base_url + path)
        self.page.locator("body[data-ready]").wait_for(state="attached")

    def log_in(self, email: str) -> None:
        """Signs in through the API, as the login page does; the cookie lands in this context."""
        response = self.context.request.post(
            f"{self.base_url}/api/v1/auth/login",
            data=json.dumps({"email": email, "password": PASSWORD}),
            headers={"Content-Type": "application/json", "X-Requested-With": "fetch", "Origin": self.base_url},
        )
        assert response.status == 200, response.text()

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """The JSON API with this context's login, as the pages call it."""
        response = self.context.request.fetch(
            f"{self.base_url}/api/v1{path}",
            method=method,
            data=json.dumps(body) if body is not None else None,
            headers={"Content-Type": "application/json", "X-Requested-With": "fetch", "Origin": self.base_url},
        )
        assert response.ok, (method, path, response.status, response.text())
        return response.json() if response.status != 204 else None

    def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def assert_no_errors(self, *, allow: tuple[str, ...] = ()) -> None:
        """No script errors, and axe-core finds nothing wrong with the page as the test leaves it."""
        unexpected = [error for error in self.errors if not any(part in error for part in allow)]
        assert unexpected == [], unexpected
        assert_accessible(self.page, f"{self.page.url} at the end of the test")


def open_visit(
    browser: Browser, server: LiveServer, *, viewport: dict | None = None, color_scheme: str = "light"
) -> Visit:
    context = browser.new_context(
        viewport=viewport or DESKTOP, color_scheme=color_scheme, base_url=server.base_url, accept_downloads=True
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    visit = Visit(server=server, context=context, page=page)
    page.on("pageerror", lambda error: visit.errors.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda message: visit.errors.append(f"console: {message.text}") if message.type == "error" else None,
    )
    return visit
