"""Browser flows around accounts: the first run, signing in and out, and settings."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.conftest import DATABASES
from tests.web.live import PASSWORD, LiveServer, Visit, running, studio_settings

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("kind", DATABASES)
def test_first_run_creates_the_admin_then_signs_out_and_in(
    kind: str, migrated_database: Callable[[str], str], tmp_path, visits: Callable[..., Visit]
) -> None:
    url = migrated_database(kind)
    with running(studio_settings(url, tmp_path / "data")) as server:
        visit = visits(server)
        page = visit.page
        visit.goto("/")
        expect(page).to_have_url(re.compile(r"/setup$"))
        expect(page.get_by_role("heading", name="Create the administrator account")).to_be_visible()

        # Bad input first: nothing is sent, and the message says what to fix.
        page.get_by_role("button", name="Create administrator").click()
        expect(page.get_by_role("alert").filter(has_text="valid email")).to_be_visible()
        page.get_by_label("Email").fill("admin@example.test")
        page.get_by_label("Password").fill("short")
        page.get_by_role("button", name="Create administrator").click()
        expect(page.get_by_text("at least 8 characters").first).to_be_visible()

        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_label("Password").press("Enter")
        expect(page).to_have_url(server.base_url + "/")
        expect(page.get_by_role("heading", name="What do you want to create?")).to_be_visible()
        expect(page.get_by_role("link", name="Admin")).to_be_visible()

        # The setup page is closed for good.
        visit.goto("/setup")
        expect(page).to_have_url(server.base_url + "/")

        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/login$"))
        page.get_by_label("Email").fill("admin@example.test")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("[data-form-error]")).to_contain_text("do not match")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(server.base_url + "/")
        visit.assert_no_errors(allow=("401", "400", "422"))


def test_login_returns_to_the_page_asked_for(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    email = studio.create_user()
    visit = visits(studio)
    page = visit.page
    visit.goto("/settings")
    expect(page).to_have_url(re.compile(r"/login\?next=/settings$"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    expect(page).to_have_url(studio.base_url + "/settings")
    expect(page.get_by_role("link", name="Admin")).to_have_count(0)
    visit.assert_no_errors()


def test_settings_theme_applies_at_once_and_on_the_next_page_without_a_flash(
    studio: LiveServer, visits: Callable[..., Visit]
) -> None:
    email = studio.create_user()
    visit = visits(studio, color_scheme="light")
    visit.log_in(email)
    page = visit.page
    visit.goto("/settings")
    html = page.locator("html")
    expect(html).not_to_have_attribute("data-theme", re.compile("."))
    page.get_by_label("Dark").check()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(page.locator("#announcer")).to_have_text("Theme set to dark.")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(14, 16, 20)"

    # A new device: the server renders the theme into the page before any script runs.
    other = visits(studio, color_scheme="light")
    other.log_in(email)
    other.page.route("**/static/js/**", lambda route: route.abort())
    other.page.goto(studio.base_url + "/")
    expect(other.page.locator("html")).to_have_attribute("data-theme", "dark")
    visit.assert_no_errors()


def test_default_parameters_are_saved_and_shown_again(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    visit = visits(studio)
    visit.log_in(studio.create_user())
    page = visit.page
    visit.goto("/settings")
    expect(page.locator("[data-defaults-form]").get_by_label("Provider")).to_have_value("builtin")
    page.get_by_label("Steps").fill("500.5")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator("[data-defaults-form] [data-form-error]")).to_contain_text("Steps")
    page.get_by_label("Steps").fill("30")
    page.get_by_label("Strength").fill("0.4")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator(".toast-success")).to_contain_text("Defaults saved.")
    saved = visit.api("GET", "/me/settings")
    assert saved["default_provider"] == "builtin"
    assert saved["default_params"]["steps"] == 30 and saved["default_params"]["strength"] == 0.4
    visit.goto("/settings")
    expect(page.get_by_label("Steps")).to_have_value("30")
    visit.assert_no_errors()


def test_api_keys_are_shown_once_and_can_be_revoked(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    email = studio.create_user()
    visit = visits(studio)
    visit.log_in(email)
    page = visit.page
    visit.goto("/settings")
    expect(page.get_by_text("No API keys yet.")).to_be_visible()
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("[data-key-form] [data-form-error]")).to_contain_text("Give the key a name")
    page.get_by_label("Name", exact=True).fill("laptop script")
    page.get_by_role("button", name="Create key").click()
    key = page.get_by_label("New API key")
    expect(key).to_have_value(re.compile(r".{20,}"))
    secret = key.input_value()
    expect(page.get_by_role("cell", name="laptop script", exact=True)).to_be_visible()

    # The key works for a program, until it is revoked.
    program = visit.context.request
    me = program.get(f"{studio.base_url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.ok and me.json()["email"] == email
    visit.page.reload()
    expect(page.get_by_label("New API key")).to_be_hidden()
    page.get_by_role("button", name="Revoke laptop script").click()
    page.get_by_role("button", name="Revoke key").click()
    expect(page.get_by_text("No API keys yet.")).to_be_visible()
    refused = program.get(f"{studio.base_url}/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status == 401
    visit.assert_no_errors()


def test_admin_sees_the_providers_and_sets_a_users_quota(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    admin_email = studio.create_user(admin=True)
    member_email = studio.create_user()
    visit = visits(studio)
    visit.log_in(admin_email)
    page = visit.page
    visit.goto("/admin")
    builtin = page.get_by_role("article", name="Built-in renderer")
    expect(builtin).to_contain_text("Ready")
    expect(builtin).to_contain_text("not an AI model")

    row = page.locator("[data-users-body] tr", has_text=member_email)
    row.get_by_label(f"Running at once for {member_email}").fill("0")
    row.get_by_role("button", name="Save").click()
    expect(page.locator(".toast-error")).to_contain_text("between 1 and 100")
    row.get_by_label(f"Running at once for {member_email}").fill("")
    row.get_by_label(f"Images per day for {member_email}").fill("5")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#announcer")).to_have_text(f"Saved {member_email}.")
    users = visit.api("GET", "/admin/users?limit=200")["items"]
    saved = next(user for user in users if user["email"] == member_email)
    assert (saved["daily_image_quota"], saved["max_running"]) == (5, None)
    visit.assert_no_errors()
