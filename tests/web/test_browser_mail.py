"""Browser flows of accounts by email: an invitation from the admin page to a signed-in newcomer, and a
forgotten password from the sign-in page to a new one, with a real SMTP server on loopback. Without SMTP,
the admin page shows the invitation link to hand over."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.conftest import DATABASES, PostgresServer
from tests.mailserver import MailServer, link_in, to
from tests.web.conftest import migrated_studio_database
from tests.web.live import PASSWORD, LiveServer, Visit, running, studio_settings

pytestmark = pytest.mark.browser

PUBLIC_URL = "http://studio.test"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
def mail_server() -> Iterator[MailServer]:
    with MailServer() as server:
        yield server


@pytest.fixture(scope="module", params=DATABASES)
def mail_studio(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    mail_server: MailServer,
) -> Iterator[LiveServer]:
    """A studio that mails through the loopback server; its sender looks for mail often."""
    url = migrated_studio_database(request.param, tmp_path_factory, postgres_server)
    settings = studio_settings(
        url,
        tmp_path_factory.mktemp("mail-studio-data"),
        smtp_url=mail_server.url,
        public_url=PUBLIC_URL,
        mail_poll_seconds=0.2,
    )
    with running(settings) as server:
        yield server


def local(link: str) -> str:
    """The studio page of a mailed link (the mail names the public address; the test server has its own)."""
    assert link.startswith(PUBLIC_URL + "/"), link
    parts = urlsplit(link)
    return f"{parts.path}#{parts.fragment}"


def test_an_invitation_from_the_admin_page_signs_the_newcomer_in(
    mail_studio: LiveServer, mail_server: MailServer, visits: Callable[..., Visit]
) -> None:
    admin_visit = visits(mail_studio)
    admin_visit.log_in(mail_studio.create_user(admin=True))
    admin_visit.goto("/admin")
    page = admin_visit.page
    invitations = page.locator("[data-invitations-table]")
    page.locator("[data-invite-form]").get_by_label("Email address").fill("not an address")
    page.get_by_role("button", name="Invite").click()
    expect(page.locator("[data-invite-form] [data-form-error]")).to_contain_text("valid email")

    newcomer = f"newcomer-{mail_studio.port}-{len(mail_server.messages())}@example.test"
    page.locator("[data-invite-form]").get_by_label("Email address").fill(newcomer)
    page.get_by_role("button", name="Invite").click()
    expect(invitations.get_by_role("row").filter(has_text=newcomer)).to_contain_text("Pending")
    expect(page.locator("[data-link-handover]")).to_be_hidden()  # mailed, not shown

    link = link_in(mail_server.wait_for(to(newcomer)))
    visit = visits(mail_studio)
    guest = visit.page
    visit.goto(local(link))
    expect(guest.get_by_role("heading", name="Join the studio")).to_be_visible()
    assert "#token=" not in guest.url  # taken out of the address bar
    guest.get_by_label("Name").fill("Nia Newcomer")
    guest.get_by_label("New password").fill("short")
    guest.get_by_role("button", name="Create my account").click()
    expect(guest.locator("[data-form-error]")).to_contain_text("at least 8 characters")
    guest.get_by_label("New password").fill(PASSWORD)
    guest.get_by_role("button", name="Create my account").click()
    expect(guest).to_have_url(mail_studio.base_url + "/")
    expect(guest.locator(".account-email")).to_have_text("Nia Newcomer")

    admin_visit.goto("/admin")
    expect(invitations.get_by_role("row").filter(has_text=newcomer)).to_contain_text("Accepted")

    # The link worked once.
    again = visits(mail_studio)
    again.goto(local(link))
    again.page.get_by_label("New password").fill(PASSWORD)
    again.page.get_by_role("button", name="Create my account").click()
    expect(again.page.locator("[data-link-problem]")).to_contain_text("already been used")
    for each in (admin_visit, visit):
        each.assert_no_errors(allow=("422",))
    again.assert_no_errors(allow=("410",))


def test_a_forgotten_password_is_reset_from_the_sign_in_page(
    mail_studio: LiveServer, mail_server: MailServer, visits: Callable[..., Visit]
) -> None:
    email = mail_studio.create_user()
    elsewhere = visits(mail_studio)
    elsewhere.log_in(email)

    visit = visits(mail_studio)
    page = visit.page
    visit.goto("/login")
    page.get_by_role("link", name="Forgot your password?").click()
    expect(page).to_have_url(re.compile(r"/reset-password$"))
    page.locator("body[data-ready]").wait_for(state="attached")
    page.get_by_label("Email").fill(email)
    page.get_by_role("button", name="Send the link").click()
    expect(page.locator("[data-link-done]")).to_contain_text("If an account uses this address")

    link = link_in(mail_server.wait_for(to(email)))
    assert "/reset-password#token=" in link
    visit.goto(local(link))
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_role("button", name="Set the new password").click()
    expect(page).to_have_url(mail_studio.base_url + "/")

    # The other device was signed out; the new password works, the old one does not.
    assert elsewhere.context.request.get(f"{mail_studio.base_url}/api/v1/me").status == 401
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-form-error]")).to_contain_text("do not match")
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(mail_studio.base_url + "/")
    visit.assert_no_errors(allow=("401",))


def test_without_smtp_the_admin_page_shows_the_invitation_link(
    studio: LiveServer, visits: Callable[..., Visit]
) -> None:
    visit = visits(studio)
    visit.log_in(studio.create_user(admin=True))
    visit.goto("/admin")
    page = visit.page
    page.locator("[data-invite-form]").get_by_label("Email address").fill(f"by-hand-{studio.port}@example.test")
    page.get_by_role("button", name="Invite").click()
    handover = page.locator("[data-link-handover]")
    expect(handover).to_contain_text("give this link")
    link = page.get_by_label("Link to hand over").input_value()
    assert "/accept-invitation#token=" in link

    guest = visits(studio)
    guest.goto(urlsplit(link).path + "#" + urlsplit(link).fragment)
    guest.page.get_by_label("New password").fill(PASSWORD)
    guest.page.get_by_role("button", name="Create my account").click()
    expect(guest.page).to_have_url(studio.base_url + "/")
    visit.assert_no_errors()
    guest.assert_no_errors()


def test_a_new_email_address_is_confirmed_from_its_mail(
    mail_studio: LiveServer, mail_server: MailServer, visits: Callable[..., Visit]
) -> None:
    email = mail_studio.create_user()
    moved = f"moved-{email}"
    visit = visits(mail_studio)
    visit.log_in(email)
    visit.goto("/settings")
    page = visit.page
    page.get_by_label("New email address").fill(moved)
    page.get_by_label("Current password").first.fill("wrong password")
    page.get_by_role("button", name="Change email").click()
    expect(page.locator("[data-email-form] [data-form-error]")).to_contain_text("wrong")
    page.get_by_label("Current password").first.fill(PASSWORD)
    page.get_by_role("button", name="Change email").click()
    expect(page.locator("[data-account-email]")).to_have_text(email)  # unchanged until confirmed

    visit.goto(local(link_in(mail_server.wait_for(to(moved)))))
    expect(page.locator("[data-link-done]")).to_contain_text(f"{moved} is confirmed")
    page.get_by_role("link", name="Go to the studio").click()
    visit.goto("/settings")
    expect(page.locator("[data-account-email]")).to_have_text(moved)
    expect(page.locator("[data-email-status]")).to_have_text("This address is confirmed.")
    visit.assert_no_errors(allow=("400",))
