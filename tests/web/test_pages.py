"""The page routes: who sees which page, the headers every page carries, and what a strict CSP allows."""

from __future__ import annotations

import uuid

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from imagestudio.container import Container
from imagestudio.web.routes import CONTENT_SECURITY_POLICY
from tests.api.helpers import API, PASSWORD, browser_client, create_user, log_in
from tests.web.htmlcheck import read_page

SESSION_ID = str(uuid.UUID("01920000-0000-7000-8000-000000000001"))
STUDIO_PAGES = {
    "/": "landing",
    f"/sessions/{SESSION_ID}": "session",
    "/settings": "settings",
    "/admin": "admin",
    "/projects": "projects",
    f"/projects/{SESSION_ID}": "project",
}


def signed_in(app: FastAPI, container: Container, *, admin: bool = True) -> TestClient:
    user = create_user(container, admin=admin)
    return log_in(app, user.email, PASSWORD)


def assert_strict_page(response, page: str) -> None:
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    facts = read_page(response.text)
    assert facts.inline_problems == []
    assert facts.body_attributes.get("data-page") == page
    # Every script is a file from this origin; the theme script comes first, before any stylesheet paints.
    sources = [script.get("src") for script in facts.scripts]
    assert all(source and source.startswith("/static/js/") for source in sources), sources
    assert sources[0] == "/static/js/theme-init.js"
    assert {"type": "module", "src": "/static/js/app.js"} in facts.scripts
    assert len(facts.ids) == len(set(facts.ids)), "duplicate ids"


def test_csp_forbids_inline_code_and_foreign_origins() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["img-src"] == "'self' blob: data:"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


LINK_PAGES = {
    "/accept-invitation": "accept-invitation",
    "/reset-password": "reset-password",
    "/verify-email": "verify-email",
}


@pytest.mark.parametrize("path", [*STUDIO_PAGES, *LINK_PAGES, "/login", "/signup"])
def test_fresh_install_sends_every_page_to_setup(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/setup"
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_setup_page_is_shown_until_the_first_account_exists(
    anonymous: TestClient, container: Container
) -> None:
    page = anonymous.get("/setup")
    assert_strict_page(page, "setup")
    assert "Create the administrator account" in page.text
    assert 'name="email"' in page.text and 'name="password"' in page.text

    create_user(container, admin=True)
    again = anonymous.get("/setup", follow_redirects=False)
    assert again.status_code == 303
    assert again.headers["location"] == "/login"


def test_setup_through_the_api_signs_the_first_admin_in(app: FastAPI) -> None:
    client = browser_client(app)
    created = client.post(f"{API}/auth/setup", json={"email": "first@example.test", "password": PASSWORD})
    assert created.status_code == 201, created.text
    landing = client.get("/")
    assert_strict_page(landing, "landing")
    assert 'href="/admin"' in landing.text
    assert "first@example.test" in landing.text


def test_anonymous_visitors_are_sent_to_login_with_where_they_were_going(
    anonymous: TestClient, container: Container
) -> None:
    create_user(container, admin=True)
    home = anonymous.get("/", follow_redirects=False)
    assert (home.status_code, home.headers["location"]) == (303, "/login")
    session = anonymous.get(f"/sessions/{SESSION_ID}", follow_redirects=False)
    assert session.status_code == 303
    assert session.headers["location"] == f"/login?next=/sessions/{SESSION_ID}"
    login = anonymous.get(session.headers["location"])
    assert_strict_page(login, "login")


def test_a_bogus_login_cookie_counts_as_signed_out(anonymous: TestClient, container: Container) -> None:
    create_user(container, admin=True)
    anonymous.cookies.set("imagestudio_session", "not-a-real-token")
    response = anonymous.get("/settings", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/settings"


@pytest.mark.parametrize(("mode", "offered"), [("open", True), ("admin", False)])
def test_login_offers_signup_only_when_signup_is_open(make_app, mode: str, offered: bool) -> None:
    app, container = make_app(signup_mode=mode)
    create_user(container, admin=True)
    client = browser_client(app)
    login = client.get("/login")
    assert_strict_page(login, "login")
    assert ('href="/signup"' in login.text) is offered
    signup = client.get("/signup")
    assert_strict_page(signup, "signup")
    assert ("Sign-up is closed" in signup.text) is not offered
    # A closed sign-up offers no form that could only fail.
    assert ("data-auth-form" in signup.text) is offered
    assert ('id="password"' in signup.text) is offered


def test_the_landing_page_names_itself_once(app: FastAPI, container: Container) -> None:
    response = signed_in(app, container).get("/")
    assert "<title>Sessions · Image Studio</title>" in response.text


@pytest.mark.parametrize("path", ["/no-such-page", "/sessions", "/settings/extra"])
def test_a_page_address_that_does_not_exist_is_a_page(app: FastAPI, container: Container, path: str) -> None:
    client = signed_in(app, container)
    page = client.get(path, headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "This page is not here" in page.text
    assert read_page(page.text).body_attributes.get("data-page") == "message"
    # Clients that ask for JSON, and every machine address, keep the problem document.
    machine = client.get(path, headers={"Accept": "application/json"})
    assert machine.status_code == 404
    assert machine.headers["content-type"] == "application/problem+json"
    assert machine.json()["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/static/no-such-file.js", "/v1/no-such-thing"])
def test_unknown_machine_addresses_stay_problems_even_for_a_browser(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path, headers={"Accept": "text/html"})
    assert response.status_code == 404
    # A problem document (the OpenAI-compatible /v1 answers in its own JSON error shape).
    assert response.headers["content-type"] in ("application/problem+json", "application/json")


def test_a_missing_page_before_setup_leads_to_setup(anonymous: TestClient) -> None:
    response = anonymous.get("/no-such-page", headers={"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/setup"


@pytest.mark.parametrize(("path", "page"), list(STUDIO_PAGES.items()))
def test_signed_in_pages_render_under_a_strict_policy(
    app: FastAPI, container: Container, path: str, page: str
) -> None:
    client = signed_in(app, container)
    response = client.get(path)
    assert_strict_page(response, page)
    facts = read_page(response.text)
    for stylesheet in facts.stylesheets:
        served = client.get(stylesheet)
        assert served.status_code == 200, stylesheet
        assert served.headers["content-type"].startswith("text/css")
    if page == "session":
        assert facts.body_attributes.get("data-session-id") == SESSION_ID


@pytest.mark.parametrize(("path", "page"), list(LINK_PAGES.items()))
def test_pages_of_mailed_links_open_for_anyone_under_a_strict_policy(
    app: FastAPI, container: Container, anonymous: TestClient, path: str, page: str
) -> None:
    # The token in the link is what counts: whoever opens it, signed in or not, gets the page.
    for client in (anonymous, signed_in(app, container, admin=False)):
        response = client.get(path, follow_redirects=False)
        assert_strict_page(response, page)
        assert 'href="/login"' in response.text


def test_the_sign_in_page_offers_a_password_reset(anonymous: TestClient, container: Container) -> None:
    create_user(container, admin=True)
    assert 'href="/reset-password">Forgot your password?' in anonymous.get("/login").text
    assert "Forgot your password?" not in anonymous.get("/signup").text


def test_session_page_names_its_session_and_refuses_a_malformed_id(app: FastAPI, container: Container) -> None:
    client = signed_in(app, container, admin=False)
    page = client.get(f"/sessions/{SESSION_ID}")
    assert_strict_page(page, "session")
    assert "data-composer" in page.text and "data-mask-canvas" in page.text
    bad = client.get("/sessions/not-a-uuid")
    assert bad.status_code == 404
    assert bad.headers["content-type"].startswith("text/html")
    assert read_page(bad.text).inline_problems == []


@pytest.mark.parametrize(
    ("next_path", "expected"),
    [
        (None, "/"),
        ("/settings", "/settings"),
        (f"/sessions/{SESSION_ID}", f"/sessions/{SESSION_ID}"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
    ],
)
def test_signed_in_visitors_skip_the_login_page_but_never_leave_the_site(
    app: FastAPI, container: Container, next_path: str | None, expected: str
) -> None:
    client = signed_in(app, container)
    response = client.get("/login", params={"next": next_path} if next_path else None, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == expected


def test_admin_page_is_for_admins_only(app: FastAPI, container: Container) -> None:
    member = signed_in(app, container, admin=False)
    refused = member.get("/admin")
    assert refused.status_code == 403
    assert "Administrators only" in refused.text
    assert read_page(refused.text).inline_problems == []
    assert 'href="/admin"' not in member.get("/").text

    admin = signed_in(app, container, admin=True)
    assert_strict_page(admin.get("/admin"), "admin")


@pytest.mark.parametrize(("theme", "attribute"), [("dark", "dark"), ("light", "light"), ("system", None)])
def test_the_accounts_theme_is_on_the_page_before_any_script_runs(
    app: FastAPI, container: Container, theme: str, attribute: str | None
) -> None:
    client = signed_in(app, container)
    changed = client.patch(f"{API}/me/settings", json={"theme": theme})
    assert changed.status_code == 200, changed.text
    facts = read_page(client.get("/settings").text)
    assert facts.html_attributes.get("data-theme") == attribute
    assert facts.html_attributes.get("data-theme-server") == theme


def test_static_files_are_served_for_revalidation(anonymous: TestClient) -> None:
    script = anonymous.get("/static/js/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["cache-control"] == "no-cache"
    assert "etag" in script.headers
    again = anonymous.get("/static/js/app.js", headers={"If-None-Match": script.headers["etag"]})
    assert again.status_code == 304
    assert anonymous.get("/static/css/session.css").headers["content-type"].startswith("text/css")
    assert anonymous.get("/static/favicon.svg").headers["content-type"].startswith("image/svg+xml")


@pytest.mark.parametrize("path", ["/static/js/missing.js", "/static/../routes.py", "/static/%2e%2e/routes.py"])
def test_static_files_outside_the_folder_are_not_served(anonymous: TestClient, path: str) -> None:
    response = anonymous.get(path)
    assert response.status_code == 404
    assert "CONTENT_SECURITY_POLICY" not in response.text


def test_the_composer_offers_the_request_limits(app: FastAPI, container: Container) -> None:
    from imagestudio.models import limits

    page = signed_in(app, container).get(f"/sessions/{SESSION_ID}").text
    expected = [
        f'maxlength="{limits.PROMPT_MAX_LENGTH}" data-prompt',
        f'maxlength="{limits.NEGATIVE_PROMPT_MAX_LENGTH}" data-param="negative_prompt"',
        f'max="{limits.NUM_IMAGES_MAX}" value="1" inputmode="numeric" data-param="num_images"',
        f'max="{limits.STEPS_MAX}" placeholder="Default" inputmode="numeric" data-param="steps"',
        f'max="{int(limits.GUIDANCE_MAX)}" step="0.5" placeholder="Default" inputmode="decimal" data-param="guidance"',
    ]
    for attributes in expected:
        assert attributes in page, attributes


def test_settings_page_says_what_is_kept(make_app) -> None:
    app, container = make_app()
    default = signed_in(app, container).get("/settings").text
    assert "kept until you delete them" in default and "after 24 hours" in default
    strict, strict_container = make_app(retention_days=30, upload_retention_hours=6)
    page = signed_in(strict, strict_container).get("/settings").text
    assert "more than 30 days ago are removed, except in sessions that belong to a project" in page
    assert "after 6 hours" in page


def test_a_published_project_opens_for_anyone_under_a_strict_policy(app: FastAPI, container: Container) -> None:
    owner = signed_in(app, container, admin=False)
    made = owner.post(f"{API}/projects", json={"name": "Shared harbour", "is_public": True}).json()
    token = made["public_url"].rsplit("/", 1)[1]
    anonymous = browser_client(app)
    page = anonymous.get(f"/p/{token}")
    assert_strict_page(page, "public")
    assert "Shared harbour" in page.text
    # No navigation into the studio and nothing of any account.
    assert 'href="/settings"' not in page.text and "Sign out" not in page.text
    gone = anonymous.get("/p/" + "x" * 43)
    assert gone.status_code == 404 and "does not open anything" in gone.text
    assert 'href="/"' not in gone.text.split("<main", 1)[1]
