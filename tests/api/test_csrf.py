"""Cookie-authenticated state changes need X-Requested-With and a same-origin Origin; bearer requests don't."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from imagestudio.accounts import security
from imagestudio.models import AuthSession, Project
from tests.api.helpers import API, BASE_URL, PASSWORD, assert_problem, browser_client, create_user

PROJECTS = f"{API}/projects"


def _count_projects(container) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(Project))


def _bare_client_with_login_of(account) -> TestClient:
    """A client with the account's login cookie but no browser headers at all."""
    client = TestClient(account.app, base_url=BASE_URL)
    client.cookies.set(security.SESSION_COOKIE, account.client.cookies.get(security.SESSION_COOKIE))
    return client


REFUSED = [
    pytest.param({"Origin": BASE_URL}, id="no X-Requested-With"),
    pytest.param({"X-Requested-With": "fetch", "Origin": "http://evil.test"}, id="cross-origin"),
    pytest.param({"X-Requested-With": "fetch", "Origin": "https://testserver"}, id="other scheme"),
    pytest.param({"X-Requested-With": "fetch", "Origin": "http://testserver:8080"}, id="other port"),
    pytest.param({"X-Requested-With": "fetch", "Origin": "null"}, id="opaque origin"),
    pytest.param({"X-Requested-With": "fetch", "Sec-Fetch-Site": "cross-site"}, id="cross-site fetch"),
    pytest.param({"X-Requested-With": "fetch", "Sec-Fetch-Site": "same-site"}, id="same-site fetch"),
    pytest.param({"X-Requested-With": "fetch"}, id="no Origin nor Sec-Fetch-Site"),
    pytest.param({"X-Requested-With": "fetch", "Origin": BASE_URL, "Sec-Fetch-Site": "cross-site"}, id="mixed"),
]


@pytest.mark.parametrize("headers", REFUSED)
def test_cookie_requests_that_change_state_must_be_same_origin(accounts, container, headers: dict) -> None:
    alice = accounts.make()
    client = _bare_client_with_login_of(alice)
    response = client.post(PROJECTS, json={"name": "forged"}, headers=headers)
    assert_problem(response, 403, "csrf_failed")
    assert _count_projects(container) == 0
    # Deleting and patching are guarded the same way.
    project_id = alice.client.post(PROJECTS, json={"name": "mine"}).json()["id"]
    assert_problem(client.delete(f"{PROJECTS}/{project_id}", headers=headers), 403, "csrf_failed")
    assert_problem(client.patch(f"{PROJECTS}/{project_id}", json={"name": "x"}, headers=headers), 403, "csrf_failed")
    assert alice.client.get(f"{PROJECTS}/{project_id}").json()["name"] == "mine"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"X-Requested-With": "fetch", "Origin": BASE_URL}, id="same origin"),
        pytest.param({"X-Requested-With": "fetch", "Origin": "http://TestServer:80"}, id="same origin, spelled out"),
        pytest.param({"X-Requested-With": "fetch", "Sec-Fetch-Site": "same-origin"}, id="Sec-Fetch-Site only"),
    ],
)
def test_same_origin_cookie_requests_pass(accounts, container, headers: dict) -> None:
    client = _bare_client_with_login_of(accounts.make())
    assert client.post(PROJECTS, json={"name": "fine"}, headers=headers).status_code == 201
    assert _count_projects(container) == 1


def test_reads_need_no_csrf_headers(accounts) -> None:
    client = _bare_client_with_login_of(accounts.make())
    assert client.get(f"{API}/me").status_code == 200


def test_bearer_requests_are_exempt(accounts, container) -> None:
    alice = accounts.make()
    key = alice.api_key()
    program = TestClient(alice.app, base_url=BASE_URL)
    response = program.post(
        PROJECTS,
        json={"name": "from a script"},
        headers={"Authorization": f"Bearer {key}", "Origin": "http://evil.test"},
    )
    assert response.status_code == 201, response.text
    assert _count_projects(container) == 1


def test_a_bearer_request_never_falls_back_to_the_cookie(accounts) -> None:
    alice = accounts.make()
    client = _bare_client_with_login_of(alice)
    response = client.post(PROJECTS, json={"name": "x"}, headers={"Authorization": "Bearer isk_nothing"})
    assert_problem(response, 401, "invalid_api_key")


def test_login_is_guarded_against_login_csrf(app, container) -> None:
    user = create_user(container)
    forged = TestClient(app, base_url=BASE_URL, headers={"Origin": "http://evil.test", "X-Requested-With": "x"})
    assert_problem(
        forged.post(f"{API}/auth/login", json={"email": user.email, "password": PASSWORD}), 403, "csrf_failed"
    )
    assert (
        "set-cookie" not in forged.post(f"{API}/auth/login", json={"email": user.email, "password": PASSWORD}).headers
    )
    bare = TestClient(app, base_url=BASE_URL)
    assert_problem(bare.post(f"{API}/auth/login", json={"email": user.email, "password": PASSWORD}), 403, "csrf_failed")


def test_programs_with_a_key_may_sign_in_without_browser_headers(accounts) -> None:
    alice = accounts.make()
    program = TestClient(alice.app, base_url=BASE_URL, headers={"Authorization": f"Bearer {alice.api_key()}"})
    response = program.post(f"{API}/auth/login", json={"email": alice.email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert response.headers["set-cookie"].startswith(f"{security.SESSION_COOKIE}=")


def test_behind_a_trusted_proxy_the_forwarded_origin_is_the_one_checked(app, container) -> None:
    user = create_user(container)
    origin = "https://studio.example"
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "studio.example", "Origin": origin}
    proxy = browser_client(app, client=("127.0.0.1", 5000), headers=forwarded)
    login = proxy.post(f"{API}/auth/login", json={"email": user.email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    cookie = login.headers["set-cookie"]
    assert cookie.startswith(f"{security.SECURE_SESSION_COOKIE}=") and "Secure" in cookie
    # The proxy speaks plain HTTP to us: hand the Secure cookie on as the browser would.
    proxy.cookies.set(security.SECURE_SESSION_COOKIE, cookie.split(";", 1)[0].split("=", 1)[1])
    assert proxy.get(f"{API}/me").json()["email"] == user.email
    assert proxy.post(PROJECTS, json={"name": "through the proxy"}).status_code == 201
    forged = proxy.post(PROJECTS, json={"name": "forged"}, headers={"Origin": "https://evil.test"})
    assert_problem(forged, 403, "csrf_failed")
    assert _count_projects(container) == 1


def test_a_login_seen_again_after_a_pause_stays_signed_in_longer(accounts, container) -> None:
    alice = accounts.make()
    with container.db.writing() as db:
        login = db.scalars(select(AuthSession).where(AuthSession.user_id == uuid.UUID(alice.id))).one()
        login.last_seen_at -= timedelta(minutes=30)
        login.idle_expires_at -= timedelta(minutes=30)
        idle_before = login.idle_expires_at
    assert alice.client.get(f"{API}/me").status_code == 200
    with container.db.reading() as db:
        login = db.scalars(select(AuthSession).where(AuthSession.user_id == uuid.UUID(alice.id))).one()
        assert login.idle_expires_at >= idle_before + timedelta(minutes=29)
