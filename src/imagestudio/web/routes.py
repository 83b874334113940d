"""Server-rendered pages. Each page is a small HTML shell; its script module talks to /api/v1 like any client.

Pages carry a strict Content-Security-Policy: scripts, styles, fonts and connections from this origin only,
images also from blob: and data: URLs (canvas masks, pasted uploads). Nothing inline, so no 'unsafe-inline'.
The server decides only what must be right before the first paint: who is signed in (or whether the install
still needs its first account), and the account's theme.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from imagestudio.accounts import security
from imagestudio.accounts.security import PASSWORD_MIN_LENGTH
from imagestudio.accounts.service import resolve_login_token, setup_required
from imagestudio.container import Container
from imagestudio.kit.errors import ApiError
from imagestudio.kit.http import is_secure
from imagestudio.models import User, UserSettings, limits
from imagestudio.sessions import public
from imagestudio.web import api_docs
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
    # Pages reflect who is signed in; a cached one would show another login's state.
    "Cache-Control": "no-store",
}
THEMES = ("light", "dark", "system")
# Addresses that answer machines: an unknown one there stays a problem document, never a page.
MACHINE_PREFIXES = ("/api/", "/v1/", "/static/", "/metrics", "/healthz", "/readyz")

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
templates.env.globals["choices"] = CHOICES
# Form bounds come from the same place as the API's, so the page never offers what the API refuses.
templates.env.globals["limits"] = limits

router = APIRouter(include_in_schema=False)


class RevalidatedStaticFiles(StaticFiles):
    """Static files that the browser revalidates on every load (cheap 304s), so an upgrade never mixes versions."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Cache-Control"] = "no-cache"
        return response


def install(app: FastAPI) -> None:
    """Adds the pages and /static to an application, and a page for a page address that does not exist."""
    app.include_router(router)
    app.mount("/static", RevalidatedStaticFiles(directory=str(STATIC_DIR)), name="static")
    api_docs.install(app)
    problem_handler = app.exception_handlers[StarletteHTTPException]

    async def page_or_problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 404 and _wants_page(request):
            return _not_found_page(request)
        return await problem_handler(request, error)

    app.add_exception_handler(StarletteHTTPException, page_or_problem)


def _wants_page(request: Request) -> bool:
    """A browser navigating (GET for HTML) outside the machine addresses."""
    return (
        request.method in ("GET", "HEAD")
        and "text/html" in request.headers.get("accept", "")
        and not request.url.path.startswith(MACHINE_PREFIXES)
    )


def _not_found_page(request: Request) -> Response:
    if needs_setup(request):
        return _redirect("/setup")
    return message_page(
        request,
        signed_in_user(request),
        status_code=404,
        title="Not found",
        heading="This page is not here",
        text="The address does not name a page of the studio. It may have been mistyped or moved.",
    )


def _container(request: Request) -> Container:
    return request.app.state.container


def needs_setup(request: Request) -> bool:
    """True on a fresh install: no account exists yet, so the first visitor creates the admin."""
    with _container(request).db.reading() as db:
        return setup_required(db)


def signed_in_user(request: Request) -> User | None:
    """The user of the request's login cookie, if it is a live login."""
    container = _container(request)
    cookie = request.cookies.get(security.session_cookie_name(is_secure(request, container.settings)))
    if not cookie:
        return None
    principal = resolve_login_token(container.db, container.settings, cookie)
    return principal.user if principal else None


def user_theme(request: Request, user: User) -> str:
    with _container(request).db.reading() as db:
        settings = db.get(UserSettings, user.id)
    theme = settings.theme if settings else "system"
    return theme if theme in THEMES else "system"


def render(
    request: Request, template: str, *, page: str, title: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        template,
        {"page": page, "title": title, "user": None, "theme": None, **context},
        status_code=status_code,
        headers=PAGE_HEADERS,
    )


def message_page(
    request: Request, user: User | None, *, status_code: int, title: str, heading: str, text: str
) -> HTMLResponse:
    """A short message in the page frame: a missing page or session, or a page for administrators only."""
    theme = user_theme(request, user) if user else None
    return render(
        request,
        "message.html",
        page="message",
        title=title,
        status_code=status_code,
        user=user,
        theme=theme,
        heading=heading,
        text=text,
    )


def _redirect(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=PAGE_HEADERS)


def safe_next(raw: str | None) -> str:
    """Only same-site paths are followed after signing in, never another origin."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or raw.startswith("/\\"):
        return "/"
    return raw


def _require_user(request: Request) -> User | Response:
    """The signed-in user, or where to send the visitor: the first-run setup, or the login page."""
    if needs_setup(request):
        return _redirect("/setup")
    user = signed_in_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return _redirect("/login" if target == "/" else f"/login?next={quote(target, safe='/')}")
    return user


def _studio_page(request: Request, template: str, *, page: str, title: str, **context: Any) -> Response:
    """A page of the studio itself: needs a login, and before any account exists, the first one."""
    user = _require_user(request)
    if isinstance(user, Response):
        return user
    return render(request, template, page=page, title=title, user=user, theme=user_theme(request, user), **context)


def _auth_page(request: Request, mode: str, title: str) -> Response:
    if mode != "setup" and needs_setup(request):
        return _redirect("/setup")
    if signed_in_user(request) is not None:
        return _redirect(safe_next(request.query_params.get("next")))
    settings = _container(request).settings
    return render(request, "auth.html", page=mode, title=title, mode=mode, signup_open=settings.signup_mode == "open")


@router.get("/", response_class=HTMLResponse)
def landing(request: Request) -> Response:
    return _studio_page(request, "landing.html", page="landing", title="Sessions")


@router.get("/sessions/{session_id}", response_class=HTMLResponse)
def session_page(request: Request, session_id: str) -> Response:
    return _owned_thing_page(request, "session", session_id)


@router.get("/gallery", response_class=HTMLResponse)
def gallery_page(request: Request) -> Response:
    return _studio_page(request, "gallery.html", page="gallery", title="Gallery")


@router.get("/projects", response_class=HTMLResponse)
def projects_page(request: Request) -> Response:
    return _studio_page(request, "projects.html", page="projects", title="Projects")


@router.get("/projects/{project_id}", response_class=HTMLResponse)
def project_page(request: Request, project_id: str) -> Response:
    return _owned_thing_page(request, "project", project_id)


def _owned_thing_page(request: Request, thing: str, thing_id: str) -> Response:
    """The page of one session or project. Whether it exists and is the visitor's is the API's answer,
    which the page asks; here only an address that names nothing is a 404."""
    try:
        parsed = uuid.UUID(thing_id)
    except ValueError:
        user = _require_user(request)
        if isinstance(user, Response):
            return user
        return message_page(
            request,
            user,
            status_code=404,
            title="Not found",
            heading=f"This {thing} is not here",
            text=f"The address does not name a {thing}.",
        )
    ids = {f"{thing}_id": str(parsed)}
    return _studio_page(request, f"{thing}.html", page=thing, title=thing.capitalize(), **ids)


@router.get("/p/{token}", response_class=HTMLResponse)
def public_project_page(request: Request, token: str) -> Response:
    """A published project, for anyone holding the link: rendered here, no script, no account."""
    try:
        with _container(request).db.reading() as db:
            view = public.public_view(db, token)
    except ApiError:
        return render(
            request,
            "message.html",
            page="message",
            title="Not found",
            status_code=404,
            heading="This link does not open anything",
            text="The project is not published at this address. Its owner may have stopped sharing it.",
            public=True,
        )
    return render(request, "public_project.html", page="public", title=view.name, project=view, public=True)


@router.get("/settings", response_class=HTMLResponse)
def settings_page(request: Request) -> Response:
    settings = _container(request).settings
    retention = {
        "retention_days": settings.retention_days,
        "upload_hours": settings.upload_retention_hours,
        "idle_days": settings.session_idle_seconds / 86400,
    }
    return _studio_page(request, "settings.html", page="settings", title="Settings", retention=retention)


@router.get("/admin", response_class=HTMLResponse)
def admin_page(request: Request) -> Response:
    user = _require_user(request)
    if isinstance(user, Response):
        return user
    if not user.is_admin:
        return message_page(
            request,
            user,
            status_code=403,
            title="Administrators only",
            heading="Administrators only",
            text="This page manages providers and users. Ask an administrator if you need a change.",
        )
    settings = _container(request).settings
    return render(
        request,
        "admin.html",
        page="admin",
        title="Administration",
        user=user,
        theme=user_theme(request, user),
        invitation_days=f"{settings.invitation_days:g}",
        password_min=PASSWORD_MIN_LENGTH,
    )


@router.get("/setup", response_class=HTMLResponse)
def setup_page(request: Request) -> Response:
    if not needs_setup(request):
        return _redirect("/login")
    return _auth_page(request, "setup", "Welcome")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return _auth_page(request, "login", "Sign in")


def _link_page(request: Request, mode: str, title: str) -> Response:
    """A page a mailed link opens. Anyone may open it: the token in the link is what counts."""
    if needs_setup(request):
        return _redirect("/setup")
    return render(request, "email_link.html", page=mode, title=title, mode=mode)


@router.get("/accept-invitation", response_class=HTMLResponse)
def accept_invitation_page(request: Request) -> Response:
    return _link_page(request, "accept-invitation", "Join the studio")


@router.get("/reset-password", response_class=HTMLResponse)
def reset_password_page(request: Request) -> Response:
    return _link_page(request, "reset-password", "Reset your password")


@router.get("/verify-email", response_class=HTMLResponse)
def verify_email_page(request: Request) -> Response:
    return _link_page(request, "verify-email", "Confirm your email address")


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request) -> Response:
    return _auth_page(request, "signup", "Create an account")
