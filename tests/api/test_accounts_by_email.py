"""Accounts by email, end to end through the API and a real SMTP server on loopback: invitations,
password reset and email verification, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, update

from imagestudio.accounts import security
from imagestudio.app import create_app
from imagestudio.config import Settings
from imagestudio.container import Container
from imagestudio.mail import outbox
from imagestudio.mail.sender import deliver_due
from imagestudio.models import AccountToken, AuditEvent, Generation, OutboxMail, User
from imagestudio.models.types import utcnow
from tests.api.helpers import (
    API,
    PASSWORD,
    Accounts,
    assert_problem,
    browser_client,
    create_user,
    error_fields,
    log_in,
    login_count,
    shift_rate_windows,
)
from tests.mailserver import MailServer, html_of, link_in, text_of, to, token_in

NEW_PASSWORD = "a brand new passphrase"
PUBLIC_URL = "http://studio.test"


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mail_server: MailServer) -> Settings:
    return make_settings(smtp_url=mail_server.url, public_url=PUBLIC_URL, studio_name="Harbour Studio")


def delivered(container: Container, server: MailServer, address: str) -> EmailMessage:
    """Run the sender once and answer the mail that reached `address`."""
    deliver_due(container.db, container.settings)
    return server.wait_for(to(address), timeout=5)


def outbox_count(container: Container) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(OutboxMail))


def token_count(container: Container) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(AccountToken))


def user_by_email(container: Container, email: str) -> User | None:
    with container.db.reading() as db:
        return db.scalar(select(User).where(User.email == email))


def expire_tokens(container: Container) -> None:
    with container.db.writing() as db:
        db.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))


# --- invitations ----------------------------------------------------------------------------------


def test_an_invitation_is_mailed_accepted_once_and_signs_the_person_in(
    app: FastAPI, container: Container, accounts: Accounts, mail_server: MailServer
) -> None:
    admin = accounts.make(admin=True)
    created = admin.client.post(f"{API}/admin/invitations", json={"email": " Newcomer@Example.TEST "})
    assert created.status_code == 201, created.text
    invitation = created.json()
    assert invitation["email"] == "newcomer@example.test" and invitation["status"] == "pending"
    assert invitation["mail_queued"] is True and invitation["link"] is None  # the link goes by mail only
    assert invitation["invited_by_id"] == admin.id
    lifetime = utcnow() + timedelta(days=7) - datetime.fromisoformat(invitation["expires_at"])
    assert abs(lifetime) < timedelta(minutes=5)

    message = delivered(container, mail_server, "newcomer@example.test")
    assert "Harbour Studio" in message["Subject"]
    link = link_in(message)
    assert link.startswith(f"{PUBLIC_URL}/accept-invitation#token=")
    assert link in html_of(message) and "<img" not in html_of(message).lower()
    token = token_in(message)
    # Only a hash of the token is stored.
    with container.db.reading() as db:
        stored = db.scalar(select(AccountToken).where(AccountToken.id == uuid.UUID(invitation["id"])))
        assert stored is not None and stored.token_hash == security.hash_token(token)
        assert token not in {stored.token_hash, stored.email}

    person = browser_client(app)
    body = {"token": token, "password": PASSWORD, "display_name": " Nia "}
    accepted = person.post(f"{API}/auth/invitations/accept", json=body)
    assert accepted.status_code == 201, accepted.text
    me = person.get(f"{API}/me").json()
    assert me["email"] == "newcomer@example.test" and me["display_name"] == "Nia"
    assert me["email_verified_at"] is not None and me["is_admin"] is False

    assert_problem(browser_client(app).post(f"{API}/auth/invitations/accept", json=body), 410, "token_used")
    listed = admin.client.get(f"{API}/admin/invitations").json()["items"]
    assert [(item["id"], item["status"]) for item in listed] == [(invitation["id"], "accepted")]
    assert_problem(admin.client.delete(f"{API}/admin/invitations/{invitation['id']}"), 409, "invitation_accepted")
    trail = admin.client.get(f"{API}/admin/audit?action=invitation").json()["items"]
    assert sorted((event["action"], event["actor_email"]) for event in trail) == [
        ("invitation.accepted", "newcomer@example.test"),
        ("invitation.created", admin.email),
    ]
    assert token not in str(trail)


def test_invitations_refuse_bad_input_and_change_nothing(
    app: FastAPI, container: Container, accounts: Accounts
) -> None:
    admin = accounts.make(admin=True)
    existing = create_user(container)
    for body, status, code in [
        ({"email": "not an email"}, 422, "validation_failed"),
        ({}, 422, "validation_failed"),
        ({"email": "x@example.test", "role": "admin"}, 422, "validation_failed"),
        ({"email": existing.email.upper()}, 409, "email_taken"),
    ]:
        assert_problem(admin.client.post(f"{API}/admin/invitations", json=body), status, code)
    assert token_count(container) == 0 and outbox_count(container) == 0
    assert_problem(admin.client.delete(f"{API}/admin/invitations/{existing.id}"), 404, "not_found")
    assert admin.client.delete(f"{API}/admin/invitations/not-an-id").status_code == 422


def test_accepting_refuses_bad_input_without_spending_the_link(
    app: FastAPI, container: Container, accounts: Accounts, mail_server: MailServer
) -> None:
    admin = accounts.make(admin=True)
    admin.client.post(f"{API}/admin/invitations", json={"email": "careful@example.test"})
    token = token_in(delivered(container, mail_server, "careful@example.test"))
    person = browser_client(app)
    accept = f"{API}/auth/invitations/accept"
    response = person.post(accept, json={"token": token, "password": "short"})
    assert_problem(response, 422, "validation_failed")
    assert error_fields(response) == {"password"}
    assert_problem(person.post(accept, json={"token": "x" * 43, "password": PASSWORD}), 404, "invalid_token")
    assert_problem(person.post(accept, json={"token": "bad token!", "password": PASSWORD}), 422)
    assert_problem(person.post(accept, json={"password": PASSWORD}), 422)
    assert_problem(person.post(accept, json={"token": token, "password": PASSWORD, "admin": True}), 422)
    assert user_by_email(container, "careful@example.test") is None
    # A reset link is not an invitation, even with the same address.
    assert_problem(
        person.post(f"{API}/auth/password-reset/confirm", json={"token": token, "password": PASSWORD}),
        404,
        "invalid_token",
    )
    # Programs without the browser headers are refused (the answer sets a login cookie).
    bare = TestClient(app, base_url="http://testserver")
    assert_problem(bare.post(accept, json={"token": token, "password": PASSWORD}), 403)
    assert person.post(accept, json={"token": token, "password": PASSWORD}).status_code == 201


def test_expired_and_revoked_invitations_are_refused(
    app: FastAPI, container: Container, accounts: Accounts, mail_server: MailServer
) -> None:
    admin = accounts.make(admin=True)
    first = admin.client.post(f"{API}/admin/invitations", json={"email": "late@example.test"}).json()
    late_token = token_in(delivered(container, mail_server, "late@example.test"))
    expire_tokens(container)
    accept = f"{API}/auth/invitations/accept"
    assert_problem(
        browser_client(app).post(accept, json={"token": late_token, "password": PASSWORD}), 410, "token_expired"
    )
    assert admin.client.get(f"{API}/admin/invitations").json()["items"][0]["status"] == "expired"

    second = admin.client.post(f"{API}/admin/invitations", json={"email": "gone@example.test"}).json()
    gone_token = token_in(delivered(container, mail_server, "gone@example.test"))
    assert admin.client.delete(f"{API}/admin/invitations/{second['id']}").status_code == 204
    assert admin.client.delete(f"{API}/admin/invitations/{second['id']}").status_code == 204  # idempotent
    assert_problem(
        browser_client(app).post(accept, json={"token": gone_token, "password": PASSWORD}), 410, "token_revoked"
    )
    statuses = {item["id"]: item["status"] for item in admin.client.get(f"{API}/admin/invitations").json()["items"]}
    assert statuses == {first["id"]: "expired", second["id"]: "revoked"}
    assert (
        user_by_email(container, "late@example.test") is None and user_by_email(container, "gone@example.test") is None
    )


def test_inviting_again_withdraws_the_earlier_link(
    app: FastAPI, container: Container, accounts: Accounts, mail_server: MailServer
) -> None:
    admin = accounts.make(admin=True)
    admin.client.post(f"{API}/admin/invitations", json={"email": "twice@example.test"})
    old = token_in(delivered(container, mail_server, "twice@example.test"))
    admin.client.post(f"{API}/admin/invitations", json={"email": "twice@example.test"})
    deliver_due(container.db, container.settings)
    [_, newer_message] = [m for m in mail_server.messages() if m["To"] == "twice@example.test"]
    accept = f"{API}/auth/invitations/accept"
    assert_problem(browser_client(app).post(accept, json={"token": old, "password": PASSWORD}), 410, "token_revoked")
    fresh = browser_client(app).post(accept, json={"token": token_in(newer_message), "password": PASSWORD})
    assert fresh.status_code == 201


def test_without_smtp_the_admin_gets_the_link_and_nothing_is_queued(
    app: FastAPI, container: Container, accounts: Accounts, make_settings: Callable[..., Settings]
) -> None:
    container.settings = make_settings(public_url=PUBLIC_URL)
    admin = accounts.make(admin=True)
    created = admin.client.post(f"{API}/admin/invitations", json={"email": "by-hand@example.test"}).json()
    assert created["mail_queued"] is False
    assert created["link"].startswith(f"{PUBLIC_URL}/accept-invitation#token=")
    assert outbox_count(container) == 0
    token = created["link"].rpartition("#token=")[2]
    person = browser_client(app)
    assert person.post(f"{API}/auth/invitations/accept", json={"token": token, "password": PASSWORD}).status_code == 201
    # The list never shows a link again: only its hash was kept.
    assert "link" not in admin.client.get(f"{API}/admin/invitations").json()["items"][0]


# --- password reset -----------------------------------------------------------------------------


def test_a_password_reset_ends_every_other_login_and_works_once(
    app: FastAPI, container: Container, mail_server: MailServer
) -> None:
    user = create_user(container, "forgetful@example.test")
    laptop, phone = log_in(app, user.email), log_in(app, user.email)
    stranger = browser_client(app)
    asked = stranger.post(f"{API}/auth/password-reset", json={"email": "Forgetful@Example.test"})
    assert asked.status_code == 202, asked.text
    message = delivered(container, mail_server, "forgetful@example.test")
    link = link_in(message)
    assert link.startswith(f"{PUBLIC_URL}/reset-password#token=")
    assert "signs the account out everywhere else" in text_of(message)

    reset = browser_client(app)
    response = reset.post(
        f"{API}/auth/password-reset/confirm", json={"token": token_in(message), "password": NEW_PASSWORD}
    )
    assert response.status_code == 200, response.text
    assert reset.get(f"{API}/me").json()["email"] == "forgetful@example.test"
    assert login_count(container, user.id) == 1  # only the login the reset began
    for old in (laptop, phone):
        assert_problem(old.get(f"{API}/me"), 401)
    assert_problem(browser_client(app).post(f"{API}/auth/login", json={"email": user.email, "password": PASSWORD}), 401)
    log_in(app, user.email, NEW_PASSWORD)
    again = browser_client(app).post(
        f"{API}/auth/password-reset/confirm", json={"token": token_in(message), "password": "yet another one"}
    )
    assert_problem(again, 410, "token_used")


def test_an_expired_reset_link_is_refused_and_the_password_stays(
    app: FastAPI, container: Container, mail_server: MailServer
) -> None:
    user = create_user(container, "slow@example.test")
    browser_client(app).post(f"{API}/auth/password-reset", json={"email": user.email})
    token = token_in(delivered(container, mail_server, user.email))
    with container.db.reading() as db:
        row = db.scalar(select(AccountToken).where(AccountToken.token_hash == security.hash_token(token)))
        assert row is not None and abs(row.expires_at - row.created_at - timedelta(hours=1)) < timedelta(seconds=1)
    expire_tokens(container)
    confirm = browser_client(app).post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )
    assert_problem(confirm, 410, "token_expired")
    log_in(app, user.email, PASSWORD)


def test_reset_confirm_refuses_bad_input_without_spending_the_link(
    app: FastAPI, container: Container, mail_server: MailServer
) -> None:
    user = create_user(container, "picky@example.test")
    browser_client(app).post(f"{API}/auth/password-reset", json={"email": user.email})
    token = token_in(delivered(container, mail_server, user.email))
    confirm = f"{API}/auth/password-reset/confirm"
    client = browser_client(app)
    assert_problem(client.post(confirm, json={"token": token, "password": "short"}), 422, "validation_failed")
    assert_problem(client.post(confirm, json={"token": token}), 422)
    assert_problem(client.post(confirm, json={"token": "", "password": NEW_PASSWORD}), 422)
    assert_problem(client.post(confirm, json={"token": "y" * 43, "password": NEW_PASSWORD}), 404, "invalid_token")
    for body in ({}, {"email": "not an email"}, {"email": user.email, "extra": 1}):
        assert_problem(client.post(f"{API}/auth/password-reset", json=body), 422)
    log_in(app, user.email, PASSWORD)
    assert client.post(confirm, json={"token": token, "password": NEW_PASSWORD}).status_code == 200


def _statements_of(container: Container, call: Callable[[], object]) -> list[str]:
    """The SQL statements `call` runs, without their parameters."""
    seen: list[str] = []

    def record(_conn, _cursor, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(container.db.engine, "before_cursor_execute", record)
    try:
        call()
    finally:
        event.remove(container.db.engine, "before_cursor_execute", record)
    return seen


def test_reset_answers_and_works_the_same_for_unknown_addresses(
    app: FastAPI, container: Container, mail_server: MailServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = create_user(container, "known@example.test")
    renders: list[str] = []
    real_render = outbox.render
    monkeypatch.setattr(
        outbox, "render", lambda settings, kind, **ctx: renders.append(kind) or real_render(settings, kind, **ctx)
    )

    answers: dict[str, httpx.Response] = {}
    statements: dict[str, list[str]] = {}

    def ask(email: str, client: TestClient) -> None:
        answers[email] = client.post(f"{API}/auth/password-reset", json={"email": email})

    # Each from its own client, so that both start from the same throttle counts.
    for index, email in enumerate((known.email, "nobody@example.test")):
        client = browser_client(app, client=(f"198.51.100.{index + 1}", 4000))
        statements[email] = _statements_of(container, lambda email=email, client=client: ask(email, client))
    known_answer, unknown_answer = answers[known.email], answers["nobody@example.test"]
    assert (known_answer.status_code, known_answer.json()) == (unknown_answer.status_code, unknown_answer.json())
    assert set(known_answer.headers) == set(unknown_answer.headers)
    # The same work either way: the same statements, one token stored and one mail rendered and queued each.
    assert statements[known.email] == statements["nobody@example.test"]
    assert renders == ["password_reset", "password_reset_unknown"]
    with container.db.reading() as db:
        assert db.scalar(select(func.count()).select_from(AuditEvent)) == 0  # asking is never recorded
    assert token_count(container) == 2 and outbox_count(container) == 2

    unknown_mail = delivered(container, mail_server, "nobody@example.test")
    assert "no account with this address" in text_of(unknown_mail)
    assert "#token=" not in text_of(unknown_mail) and "#token=" not in html_of(unknown_mail)
    assert "#token=" in text_of(mail_server.wait_for(to(known.email)))
    # The stored token of an unknown address leads nowhere.
    with container.db.reading() as db:
        unknown_row = db.scalar(select(AccountToken).where(AccountToken.email == "nobody@example.test"))
        assert unknown_row is not None and unknown_row.user_id is None


def test_reset_requests_are_throttled_per_address_and_per_client(
    app: FastAPI, container: Container, make_settings: Callable[..., Settings], mail_server: MailServer
) -> None:
    container.settings = make_settings(
        smtp_url=mail_server.url, password_reset_max_per_address=2, password_reset_max_per_client=4
    )
    user = create_user(container, "target@example.test")
    first = browser_client(app, client=("198.51.100.1", 4000))
    second = browser_client(app, client=("198.51.100.2", 4000))
    for client in (first, second):
        assert client.post(f"{API}/auth/password-reset", json={"email": user.email}).status_code == 202
    throttled = first.post(f"{API}/auth/password-reset", json={"email": user.email.upper()})
    assert_problem(throttled, 429, "too_many_requests")
    assert 1 <= int(throttled.headers["Retry-After"]) <= 3600
    # Unknown addresses are throttled alike (the 429 says nothing about accounts).
    for _ in range(2):
        assert first.post(f"{API}/auth/password-reset", json={"email": "ghost@example.test"}).status_code == 202
    assert_problem(first.post(f"{API}/auth/password-reset", json={"email": "ghost@example.test"}), 429)
    # Per client: refused requests are not counted, so `first` has one of its 4 left, on any address.
    assert first.post(f"{API}/auth/password-reset", json={"email": "third@example.test"}).status_code == 202
    assert_problem(first.post(f"{API}/auth/password-reset", json={"email": "fourth@example.test"}), 429)
    assert second.post(f"{API}/auth/password-reset", json={"email": "fourth@example.test"}).status_code == 202
    assert outbox_count(container) == 6

    shift_rate_windows(container, 3600)
    assert first.post(f"{API}/auth/password-reset", json={"email": user.email}).status_code == 202


def test_an_admin_can_make_a_reset_link_to_hand_over(
    app: FastAPI, container: Container, accounts: Accounts, make_settings: Callable[..., Settings]
) -> None:
    container.settings = make_settings(public_url=PUBLIC_URL)
    admin, user = accounts.make(admin=True), accounts.make()
    made = admin.client.post(f"{API}/admin/users/{user.id}/password-reset")
    assert made.status_code == 201, made.text
    link = made.json()["link"]
    assert link.startswith(f"{PUBLIC_URL}/reset-password#token=")
    token = link.rpartition("#token=")[2]
    confirm = browser_client(app).post(
        f"{API}/auth/password-reset/confirm", json={"token": token, "password": NEW_PASSWORD}
    )
    assert confirm.status_code == 200
    assert_problem(user.client.get(f"{API}/me"), 401)
    assert_problem(admin.client.post(f"{API}/admin/users/{uuid.uuid4()}/password-reset"), 404, "not_found")
    # Without SMTP, the public form still answers alike and queues nothing.
    asked = browser_client(app).post(f"{API}/auth/password-reset", json={"email": user.email})
    assert asked.status_code == 202 and asked.json()["mail_queued"] is False
    assert outbox_count(container) == 0
    # An address cannot be confirmed without mail: changing it is refused, not silently lost.
    mover = accounts.make()
    change = mover.client.post(f"{API}/me/email", json={"email": "elsewhere@example.test", "password": PASSWORD})
    assert_problem(change, 409, "mail_unavailable")
    assert token_count(container) == 2 and outbox_count(container) == 0


# --- email verification -------------------------------------------------------------------------


def test_open_signup_must_confirm_its_address_before_generating(
    app: FastAPI, container: Container, mail_server: MailServer
) -> None:
    create_user(container, admin=True)  # sign-up opens once the studio is set up
    client = browser_client(app)
    signed_up = client.post(f"{API}/auth/signup", json={"email": "fresh@example.test", "password": PASSWORD})
    assert signed_up.status_code == 201 and signed_up.json()["email_verified_at"] is None
    generation = {"prompt": "a lighthouse", "width": 64, "height": 64}
    assert_problem(client.post(f"{API}/generations", json=generation), 403, "email_unverified")
    session = client.post(f"{API}/sessions", json={}).json()
    assert_problem(
        client.post(f"{API}/sessions/{session['id']}/messages", json={"content": "a cat", "mode": "fresh"}),
        403,
        "email_unverified",
    )

    # The OpenAI-compatible API asks the same, in OpenAI's error shape.
    key = client.post(f"{API}/api-keys", json={"name": "k", "scopes": ["read", "generate"]}).json()["key"]
    program = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    refused = program.post("/v1/images/generations", json={"prompt": "a lighthouse"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "email_unverified"
    with container.db.reading() as db:
        assert db.scalar(select(func.count()).select_from(Generation)) == 0

    message = delivered(container, mail_server, "fresh@example.test")
    assert link_in(message).startswith(f"{PUBLIC_URL}/verify-email#token=")
    verified = browser_client(app).post(f"{API}/auth/verify-email", json={"token": token_in(message)})
    assert verified.status_code == 200, verified.text
    assert verified.json()["email"] == "fresh@example.test"
    assert client.get(f"{API}/me").json()["email_verified_at"] is not None
    assert client.post(f"{API}/generations", json=generation).status_code == 201
    reused = browser_client(app).post(f"{API}/auth/verify-email", json={"token": token_in(message)})
    assert_problem(reused, 410, "token_used")
    assert_problem(client.post(f"{API}/me/email-verification"), 409, "already_verified")


def test_verification_can_be_switched_off_and_is_off_without_smtp(
    app: FastAPI, container: Container, make_settings: Callable[..., Settings], mail_server: MailServer
) -> None:
    create_user(container, admin=True)  # sign-up opens once the studio is set up
    generation = {"prompt": "a lighthouse", "width": 64, "height": 64}
    for index, values in enumerate([{"smtp_url": mail_server.url, "email_verification": "off"}, {}]):
        container.settings = make_settings(**values)
        client = browser_client(app)
        client.post(f"{API}/auth/signup", json={"email": f"free{index}@example.test", "password": PASSWORD})
        assert client.post(f"{API}/generations", json=generation).status_code == 201


def test_a_lost_confirmation_can_be_sent_again_and_the_old_link_stops(
    app: FastAPI, container: Container, mail_server: MailServer
) -> None:
    create_user(container, admin=True)  # sign-up opens once the studio is set up
    client = browser_client(app)
    client.post(f"{API}/auth/signup", json={"email": "lost@example.test", "password": PASSWORD})
    first = token_in(delivered(container, mail_server, "lost@example.test"))
    expire_tokens(container)
    assert_problem(browser_client(app).post(f"{API}/auth/verify-email", json={"token": first}), 410, "token_expired")
    resent = client.post(f"{API}/me/email-verification")
    assert resent.status_code == 202 and resent.json()["mail_queued"] is True
    deliver_due(container.db, container.settings)
    newest = [m for m in mail_server.messages() if m["To"] == "lost@example.test"][-1]
    assert browser_client(app).post(f"{API}/auth/verify-email", json={"token": token_in(newest)}).status_code == 200
    assert_problem(browser_client(app).post(f"{API}/auth/verify-email", json={}), 422)
    assert_problem(browser_client(app).post(f"{API}/auth/verify-email", json={"token": "z" * 43}), 404, "invalid_token")


def test_changing_ones_email_takes_effect_only_when_the_new_address_confirms(
    app: FastAPI, container: Container, accounts: Accounts, mail_server: MailServer
) -> None:
    account = accounts.make(email="old@example.test")
    other = create_user(container, "taken@example.test")
    change = f"{API}/me/email"
    response = account.client.post(change, json={"email": "new@example.test", "password": "wrong password"})
    assert_problem(response, 400, "wrong_password")
    assert error_fields(response) == {"password"}
    assert_problem(account.client.post(change, json={"email": other.email, "password": PASSWORD}), 409, "email_taken")
    assert_problem(account.client.post(change, json={"email": "old@example.test", "password": PASSWORD}), 422)
    assert_problem(account.client.post(change, json={"email": "nope", "password": PASSWORD}), 422)
    assert outbox_count(container) == 0
    key_client = account.bearer()
    assert_problem(key_client.post(change, json={"email": "new@example.test", "password": PASSWORD}), 403)

    asked = account.client.post(change, json={"email": "New@Example.test", "password": PASSWORD})
    assert asked.status_code == 202, asked.text
    assert account.client.get(f"{API}/me").json()["email"] == "old@example.test"  # not yet
    message = delivered(container, mail_server, "new@example.test")
    confirmed = browser_client(app).post(f"{API}/auth/verify-email", json={"token": token_in(message)})
    assert confirmed.status_code == 200 and confirmed.json()["email"] == "new@example.test"
    assert account.client.get(f"{API}/me").json()["email"] == "new@example.test"
    log_in(app, "new@example.test")
    assert_problem(
        browser_client(app).post(f"{API}/auth/login", json={"email": "old@example.test", "password": PASSWORD}), 401
    )


def test_an_address_taken_meanwhile_is_not_stolen_by_a_late_confirmation(
    app: FastAPI, container: Container, accounts: Accounts, mail_server: MailServer
) -> None:
    account = accounts.make()
    account.client.post(f"{API}/me/email", json={"email": "contested@example.test", "password": PASSWORD})
    token = token_in(delivered(container, mail_server, "contested@example.test"))
    create_user(container, "contested@example.test")
    assert_problem(browser_client(app).post(f"{API}/auth/verify-email", json={"token": token}), 409, "email_taken")
    assert account.client.get(f"{API}/me").json()["email"] == account.email


# --- delivery in the background -----------------------------------------------------------------


def test_the_server_process_delivers_queued_mail_in_the_background(
    container: Container, make_settings: Callable[..., Settings], mail_server: MailServer
) -> None:
    settings = make_settings(smtp_url=mail_server.url, mail_poll_seconds=0.2, workers=1)
    settings.database_url = container.settings.database_url
    container.settings = settings
    create_user(container, "background@example.test")
    # Queued while no sender runs, as before a restart: nothing is lost.
    browser_client(create_app(container=container)).post(
        f"{API}/auth/password-reset", json={"email": "background@example.test"}
    )
    assert mail_server.messages() == []
    with browser_client(create_app(container=container)):
        mail_server.wait_for(to("background@example.test"), timeout=20)
