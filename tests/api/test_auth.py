"""Setup, sign-up, logins: tokens, expiry, logout, password changes, throttling, cookies."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from imagestudio.accounts import security
from imagestudio.container import Container
from imagestudio.models import AuthSession, User
from imagestudio.models.types import utcnow
from tests.api.helpers import (
    API,
    BASE_URL,
    HTTPS_BASE_URL,
    PASSWORD,
    assert_problem,
    browser_client,
    create_user,
    log_in,
    login_count,
    shift_rate_windows,
)

LOGIN = f"{API}/auth/login"


def _cookie(client: TestClient, name: str = security.SESSION_COOKIE) -> str:
    value = client.cookies.get(name)
    assert value, f"no {name} cookie"
    return value


def _client_with_token(app, token: str, *, base_url: str = BASE_URL) -> TestClient:
    client = browser_client(app, base_url=base_url)
    client.cookies.set(security.SESSION_COOKIE, token)
    return client


def _count_users(container: Container) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(User))


def _login_row(container: Container, token: str) -> AuthSession | None:
    with container.db.reading() as db:
        return db.scalar(select(AuthSession).where(AuthSession.token_hash == security.hash_token(token)))


# --- setup and sign-up -----------------------------------------------------------------------


def test_setup_creates_the_first_admin_once(client, container) -> None:
    assert client.get(f"{API}/auth/setup").json() == {"setup_required": True, "signup_open": False}
    response = client.post(f"{API}/auth/setup", json={"email": " Root@Example.TEST ", "password": PASSWORD})
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "root@example.test" and response.json()["is_admin"] is True
    me = client.get(f"{API}/me")
    assert me.status_code == 200 and me.json()["is_admin"] is True
    assert me.json()["last_login_at"] is not None

    stranger = browser_client(client.app)
    for email in ("second@example.test", "root@example.test"):
        assert_problem(
            stranger.post(f"{API}/auth/setup", json={"email": email, "password": PASSWORD}), 409, "setup_done"
        )
    assert _count_users(container) == 1
    assert client.get(f"{API}/auth/setup").json() == {"setup_required": False, "signup_open": True}


def test_setup_is_closed_once_any_account_exists(client, container) -> None:
    create_user(container)
    response = client.post(f"{API}/auth/setup", json={"email": "late@example.test", "password": PASSWORD})
    assert_problem(response, 409, "setup_done")
    assert _count_users(container) == 1


def test_open_signup_creates_a_signed_in_user(client, container) -> None:
    create_user(container, admin=True)
    response = client.post(f"{API}/auth/signup", json={"email": "new@example.test", "password": PASSWORD})
    assert response.status_code == 201, response.text
    assert response.json()["is_admin"] is False
    assert client.get(f"{API}/me").json()["email"] == "new@example.test"

    again = browser_client(client.app).post(
        f"{API}/auth/signup", json={"email": "NEW@example.test", "password": PASSWORD}
    )
    body = assert_problem(again, 409, "email_taken")
    assert body["errors"] == [{"field": "email", "message": "Taken."}]
    assert _count_users(container) == 2


def test_signup_waits_for_setup(client, container) -> None:
    response = client.post(f"{API}/auth/signup", json={"email": "early@example.test", "password": PASSWORD})
    assert_problem(response, 409, "setup_required")
    assert _count_users(container) == 0


def test_admin_only_signup_refuses_strangers_but_admins_create_users(app, make_settings, container, accounts) -> None:
    container.settings = make_settings(signup_mode="admin")
    admin = accounts.make(admin=True)
    stranger = browser_client(app)
    response = stranger.post(f"{API}/auth/signup", json={"email": "walk-in@example.test", "password": PASSWORD})
    assert_problem(response, 403, "signup_disabled")
    assert stranger.get(f"{API}/auth/setup").json() == {"setup_required": False, "signup_open": False}

    made = admin.client.post(f"{API}/admin/users", json={"email": "invited@example.test", "password": PASSWORD})
    assert made.status_code == 201, made.text
    assert log_in(app, "invited@example.test").get(f"{API}/me").json()["id"] == made.json()["id"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "x@example.test", "password": "seven77"}, "password"),
        ({"email": "x@example.test", "password": "y" * 1025}, "password"),
        ({"email": "not an email", "password": PASSWORD}, "email"),
        ({"email": "x@example.test", "password": PASSWORD, "display_name": "n" * 201}, "display_name"),
    ],
)
def test_new_accounts_follow_the_rules(client, container, body: dict, field: str) -> None:
    create_user(container, admin=True)
    response = client.post(f"{API}/auth/signup", json=body)
    assert field in {item["field"] for item in assert_problem(response, 422, "validation_failed")["errors"]}
    assert _count_users(container) == 1


def test_password_rules_take_exactly_8_to_1024_characters(client, container) -> None:
    create_user(container, admin=True)
    for index, password in enumerate(["8" * 8, "k" * 1024]):
        response = client.post(f"{API}/auth/signup", json={"email": f"edge{index}@example.test", "password": password})
        assert response.status_code == 201, response.text
        assert log_in(client.app, f"edge{index}@example.test", password)


# --- logins ----------------------------------------------------------------------------------


def test_each_login_gets_a_new_token_and_the_cookie_is_locked_down(app, container) -> None:
    user = create_user(container)
    first = browser_client(app)
    response = first.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{security.SESSION_COOKIE}=")
    assert "HttpOnly" in cookie and "Path=/" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie and "Domain" not in cookie
    token_one = _cookie(first)
    assert len(token_one) >= 43  # 32 random bytes

    second = log_in(app, user.email)
    token_two = _cookie(second)
    assert token_one != token_two
    assert first.get(f"{API}/me").status_code == 200 and second.get(f"{API}/me").status_code == 200

    # Signing in again from the same browser replaces its login: the old token is dead.
    first.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    token_three = _cookie(first)
    assert token_three not in (token_one, token_two)
    assert_problem(_client_with_token(app, token_one).get(f"{API}/me"), 401, "not_authenticated")
    assert login_count(container, str(user.id)) == 2

    # Only hashes are stored.
    row = _login_row(container, token_three)
    assert row is not None and row.token_hash != token_three and token_three not in row.token_hash


def test_logout_ends_the_login(app, container) -> None:
    user = create_user(container)
    client = log_in(app, user.email)
    token = _cookie(client)
    response = client.post(f"{API}/auth/logout")
    assert response.status_code == 204
    assert f'{security.SESSION_COOKIE}=""' in response.headers["set-cookie"]
    assert "Max-Age=0" in response.headers["set-cookie"]
    assert_problem(_client_with_token(app, token).get(f"{API}/me"), 401, "not_authenticated")
    assert _login_row(container, token) is None
    # Logging out when signed out is harmless.
    assert browser_client(app).post(f"{API}/auth/logout").status_code == 204


def test_idle_logins_expire(app, container) -> None:
    user = create_user(container)
    client = log_in(app, user.email)
    token = _cookie(client)
    with container.db.writing() as db:
        db.execute(update(AuthSession).values(idle_expires_at=utcnow() - timedelta(seconds=1)))
    assert_problem(client.get(f"{API}/me"), 401, "not_authenticated")
    assert _login_row(container, token) is None


def test_logins_expire_absolutely_even_when_in_use(app, container) -> None:
    user = create_user(container)
    client = log_in(app, user.email)
    with container.db.writing() as db:
        db.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert_problem(client.get(f"{API}/me"), 401, "not_authenticated")


def test_last_seen_is_written_at_most_once_a_minute(app, container, settings) -> None:
    user = create_user(container)
    client = log_in(app, user.email)
    token = _cookie(client)
    recent = utcnow() - timedelta(seconds=30)
    with container.db.writing() as db:
        db.execute(update(AuthSession).values(last_seen_at=recent, idle_expires_at=recent + timedelta(hours=1)))
    assert client.get(f"{API}/me").status_code == 200
    row = _login_row(container, token)
    assert row.last_seen_at == recent and row.idle_expires_at == recent + timedelta(hours=1)

    stale = utcnow() - timedelta(minutes=5)
    with container.db.writing() as db:
        db.execute(update(AuthSession).values(last_seen_at=stale, idle_expires_at=stale + timedelta(hours=1)))
    before = utcnow()
    assert client.get(f"{API}/me").status_code == 200
    row = _login_row(container, token)
    assert row.last_seen_at >= before
    # The idle deadline moves with use, but never past the absolute one.
    assert row.idle_expires_at >= before + timedelta(seconds=settings.session_idle_seconds) - timedelta(seconds=5)
    assert row.idle_expires_at <= row.expires_at


def test_disabled_users_lose_their_logins_and_cannot_sign_in(app, container, accounts) -> None:
    admin = accounts.make(admin=True)
    user = accounts.make()
    response = admin.client.patch(f"{API}/admin/users/{user.id}", json={"is_active": False})
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert_problem(user.client.get(f"{API}/me"), 401, "not_authenticated")
    assert login_count(container, user.id) == 0
    assert_problem(
        browser_client(app).post(LOGIN, json={"email": user.email, "password": PASSWORD}), 403, "account_disabled"
    )
    # A wrong password still answers like any wrong password: nothing is revealed without it.
    wrong = browser_client(app).post(LOGIN, json={"email": user.email, "password": "not the password"})
    assert_problem(wrong, 401, "invalid_credentials")


def test_unknown_user_and_wrong_password_answer_identically(app, container, monkeypatch) -> None:
    user = create_user(container)
    verifications: list[str] = []
    real_verify = security.verify_password

    def counting_verify(settings, password_hash, password):
        verifications.append(password_hash)
        return real_verify(settings, password_hash, password)

    monkeypatch.setattr(security, "verify_password", counting_verify)
    answers = []
    for email in (user.email, "nobody@example.test"):
        verifications.clear()
        response = browser_client(app).post(LOGIN, json={"email": email, "password": "not the password"})
        # Both spend one argon2 verification, so neither answers faster.
        assert len(verifications) == 1 and verifications[0].startswith("$argon2id$")
        answers.append(response)
    known, unknown = answers
    assert known.status_code == unknown.status_code == 401
    assert known.content == unknown.content
    assert "set-cookie" not in known.headers and "set-cookie" not in unknown.headers
    assert sorted(known.headers.keys()) == sorted(unknown.headers.keys())


def test_password_hashes_are_upgraded_when_parameters_change(app, make_settings, container) -> None:
    user = create_user(container)
    old_hash = user.password_hash
    assert "t=1" in old_hash
    container.settings = make_settings(argon2_time_cost=2)
    assert log_in(app, user.email).get(f"{API}/me").status_code == 200
    with container.db.reading() as db:
        new_hash = db.get(User, user.id).password_hash
    assert new_hash != old_hash and "t=2" in new_hash and new_hash.startswith("$argon2id$")
    assert log_in(app, user.email).get(f"{API}/me").status_code == 200


# --- password change -----------------------------------------------------------------------


def test_password_change_ends_every_other_login(app, container) -> None:
    user = create_user(container)
    here, elsewhere = log_in(app, user.email), log_in(app, user.email)
    response = here.post(f"{API}/me/password", json={"current_password": PASSWORD, "new_password": "a brand new one"})
    assert response.status_code == 204, response.text
    assert here.get(f"{API}/me").status_code == 200
    assert_problem(elsewhere.get(f"{API}/me"), 401, "not_authenticated")
    assert login_count(container, str(user.id)) == 1
    assert_problem(browser_client(app).post(LOGIN, json={"email": user.email, "password": PASSWORD}), 401)
    assert log_in(app, user.email, "a brand new one")


def test_password_change_checks_the_current_password_and_the_rules(app, container) -> None:
    user = create_user(container)
    client, other = log_in(app, user.email), log_in(app, user.email)
    wrong = client.post(f"{API}/me/password", json={"current_password": "guess guess", "new_password": "whatever123"})
    assert assert_problem(wrong, 400, "wrong_password")["errors"] == [
        {"field": "current_password", "message": "Wrong."}
    ]
    short = client.post(f"{API}/me/password", json={"current_password": PASSWORD, "new_password": "short"})
    assert_problem(short, 422, "validation_failed")
    # Nothing changed: the old password works and the other login lives.
    assert other.get(f"{API}/me").status_code == 200
    assert log_in(app, user.email)


def test_password_change_needs_a_login_not_an_api_key(accounts) -> None:
    user = accounts.make()
    program = user.bearer()
    response = program.post(f"{API}/me/password", json={"current_password": PASSWORD, "new_password": "new password"})
    assert_problem(response, 403, "login_required")


# --- throttling ------------------------------------------------------------------------------


def test_failed_logins_are_throttled_per_account_and_address(app, make_settings, container) -> None:
    container.settings = make_settings(login_max_failures_per_account=3, login_max_failures_per_address=100)
    user, bystander = create_user(container), create_user(container)
    stranger = browser_client(app, client=("198.51.100.20", 4000))
    for _ in range(3):
        assert_problem(stranger.post(LOGIN, json={"email": user.email, "password": "wrong password"}), 401)
    # From there even the right password is refused now, with the time to wait: guessing goes no faster.
    throttled = stranger.post(LOGIN, json={"email": user.email.upper(), "password": PASSWORD})
    assert_problem(throttled, 429, "too_many_attempts")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 900
    # Other accounts are not affected.
    assert stranger.post(LOGIN, json={"email": bystander.email, "password": PASSWORD}).status_code == 200
    # The owner, signing in from elsewhere, is not locked out by a stranger's guesses.
    owner = browser_client(app, client=("192.0.2.10", 5000))
    assert owner.post(LOGIN, json={"email": user.email, "password": PASSWORD}).status_code == 200
    assert_problem(stranger.post(LOGIN, json={"email": user.email, "password": PASSWORD}), 429, "too_many_attempts")

    shift_rate_windows(container, 900)
    assert stranger.post(LOGIN, json={"email": user.email, "password": PASSWORD}).status_code == 200


def test_failed_logins_are_throttled_per_address(app, make_settings, container) -> None:
    container.settings = make_settings(login_max_failures_per_account=100, login_max_failures_per_address=3)
    user = create_user(container)
    attacker = browser_client(app, client=("198.51.100.7", 4000))
    for index in range(3):
        response = attacker.post(LOGIN, json={"email": f"guess{index}@example.test", "password": "wrong password"})
        assert_problem(response, 401, "invalid_credentials")
    throttled = attacker.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert_problem(throttled, 429, "too_many_attempts")
    assert int(throttled.headers["Retry-After"]) >= 1
    # Another address signs in to the same account.
    neighbour = browser_client(app, client=("198.51.100.8", 4000))
    assert neighbour.post(LOGIN, json={"email": user.email, "password": PASSWORD}).status_code == 200

    shift_rate_windows(container, 900)
    assert attacker.post(LOGIN, json={"email": user.email, "password": PASSWORD}).status_code == 200


def test_addresses_behind_a_trusted_proxy_are_told_apart(app, make_settings, container) -> None:
    container.settings = make_settings(login_max_failures_per_account=100, login_max_failures_per_address=2)
    user = create_user(container)
    proxy = ("127.0.0.1", 5000)
    attacker = browser_client(app, client=proxy, headers={"X-Forwarded-For": "203.0.113.50"})
    for _ in range(2):
        assert_problem(attacker.post(LOGIN, json={"email": "x@example.test", "password": "wrong password"}), 401)
    assert_problem(attacker.post(LOGIN, json={"email": user.email, "password": PASSWORD}), 429)
    other = browser_client(app, client=proxy, headers={"X-Forwarded-For": "203.0.113.51"})
    assert other.post(LOGIN, json={"email": user.email, "password": PASSWORD}).status_code == 200
    # An untrusted peer cannot pick its address by sending the header.
    spoofer = browser_client(app, client=("198.51.100.9", 1), headers={"X-Forwarded-For": "203.0.113.52"})
    for _ in range(2):
        assert_problem(spoofer.post(LOGIN, json={"email": "x@example.test", "password": "wrong password"}), 401)
    fresh_header = browser_client(app, client=("198.51.100.9", 1), headers={"X-Forwarded-For": "203.0.113.53"})
    assert_problem(fresh_header.post(LOGIN, json={"email": user.email, "password": PASSWORD}), 429)


def test_password_change_guesses_count_as_failed_logins(app, make_settings, container) -> None:
    container.settings = make_settings(login_max_failures_per_account=2)
    user = create_user(container)
    client = log_in(app, user.email)
    for _ in range(2):
        response = client.post(
            f"{API}/me/password", json={"current_password": "guess guess", "new_password": "new one!"}
        )
        assert_problem(response, 400, "wrong_password")
    response = client.post(f"{API}/me/password", json={"current_password": PASSWORD, "new_password": "new one!"})
    assert_problem(response, 429, "too_many_attempts")


# --- HTTPS -----------------------------------------------------------------------------------


def test_over_https_the_cookie_is_secure_and_host_prefixed(app, container) -> None:
    user = create_user(container)
    client = browser_client(app, base_url=HTTPS_BASE_URL)
    response = client.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{security.SECURE_SESSION_COOKIE}=")
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert client.get(f"{API}/me").status_code == 200
    # The plain cookie name is not accepted over HTTPS (it could have been planted by a sibling site).
    token = client.cookies.get(security.SECURE_SESSION_COOKIE)
    planted = browser_client(app, base_url=HTTPS_BASE_URL)
    planted.cookies.set(security.SESSION_COOKIE, token)
    assert_problem(planted.get(f"{API}/me"), 401)


def test_forwarded_proto_is_believed_only_from_trusted_proxies(app, container) -> None:
    user = create_user(container)
    headers = {"X-Forwarded-Proto": "https", "Origin": HTTPS_BASE_URL}
    behind_proxy = browser_client(app, client=("127.0.0.1", 5000), headers=headers)
    response = behind_proxy.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert response.headers["set-cookie"].startswith(f"{security.SECURE_SESSION_COOKIE}=")
    assert "Secure" in response.headers["set-cookie"]

    direct = browser_client(app, client=("198.51.100.1", 5000), headers={"X-Forwarded-Proto": "https"})
    response = direct.post(LOGIN, json={"email": user.email, "password": PASSWORD})
    assert response.status_code == 200
    assert response.headers["set-cookie"].startswith(f"{security.SESSION_COOKIE}=")
    assert "Secure" not in response.headers["set-cookie"]


def test_concurrent_setups_make_exactly_one_admin(app, container) -> None:
    def attempt(index: int) -> int:
        client = browser_client(app)
        return client.post(
            f"{API}/auth/setup", json={"email": f"racer{index}@example.test", "password": PASSWORD}
        ).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = sorted(pool.map(attempt, range(4)))
    assert statuses == [201, 409, 409, 409]
    assert _count_users(container) == 1
