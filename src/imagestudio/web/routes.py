"""Server-rendered pages. Each page is a small HTML shell; its script module talks to /api/v1 like any client.

Pages carry a strict Content-Security-Policy: scripts, styles, fonts and connections from this origin only,
images also from blob: and data: URLs (canvas masks, pasted uploads). Nothing inline, so no 'unsafe-inline'.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from starlette.types import Scope

from imagestudio import __version__
from imagestudio.models import User
from imagestudio.web.prompt_builder import CHOICES

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "font-src 'self'",
        "connect-src 'self'",
        "media-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    # Pages are shells around live data; a cached one would show a stale signed-in state.
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals["version"] = __version__
templates.env.globals["choices"] = CHOICES

router = APIRouter(include_in_schema=False)


class RevalidatedStaticFiles(StaticFiles):
    """Static files that the browser revalidates on every load (cheap 304s), so an upgrade never mixes versions."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


def install(app: FastAPI) -> None:
    """Adds the pages and /static to an application."""
    app.include_router(router)
    app.mount("/static", RevalidatedStaticFiles(directory=str(STATIC_DIR)), name="static")


def needs_setup(request: Request) -> bool:
    """True on a fresh install: no account exists yet, so the first visitor creates the admin."""
    container = request.app.state.container
    with container.db.reading() as db:
        return db.execute(select(User.id).limit(1)).first() is None


def render(request: Request, template: str, *, page: str, title: str, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        template,
        {"page": page, "title": title, **context},
        headers=PAGE_HEADERS,
    )
    return response


def _app_page(request: Request, template: str, *, page: str, title: str, **context: Any) -> Response:
    """A page of the studio itself: on a fresh install everyone is sent to create the first account."""
    if needs_setup(request):
        return RedirectResponse("/setup", status_code=303, headers=PAGE_HEADERS)
    return render(request, template, page=page, title=title, **context)


@router.get("/", response_class=HTMLResponse)
def landing(request: Request) -> Response:
    return _app_page(request, "landing.html", page="landing", title="Image Studio")


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_page(request: Request, session_id: uuid.UUID) -> Response:
    return _app_page(request, "session.html", page="session", title="Session", session_id=str(session_id))


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request) -> Response:
    return _app_page(request, "settings.html", page="settings", title="Settings")


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request) -> Response:
    return _app_page(request, "admin.html", page="admin", title="Administration")


@router.get("/setup", response_class=HTMLResponse)
def setup_page(request: Request) -> Response:
    if not needs_setup(request):
        return RedirectResponse("/login", status_code=303, headers=PAGE_HEADERS)
    return render(request, "auth.html", page="setup", title="Welcome", mode="setup")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    if needs_setup(request):
        return RedirectResponse("/setup", status_code=303, headers=PAGE_HEADERS)
    return render(request, "auth.html", page="login", title="Sign in", mode="login")


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request) -> Response:
    if needs_setup(request):
        return RedirectResponse("/setup", status_code=303, headers=PAGE_HEADERS)
    return render(request, "auth.html", page="signup", title="Create an account", mode="signup")
