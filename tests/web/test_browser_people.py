"""Administration in the browser: adding a user with a first password, each user's usage, and choosing what an
API key may do when it is made. Wide and phone, both themes, with axe-core on each state."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.web.axe import assert_accessible
from tests.web.live import PASSWORD, PHONE, LiveServer, Visit
from tests.web.studio import horizontal_overflow, start_session, wait_for_generation

pytestmark = pytest.mark.browser
WIDE = {"width": 1440, "height": 900}


@pytest.mark.parametrize(("theme", "viewport"), [("light", WIDE), ("dark", PHONE)])
def test_an_administrator_adds_a_user_and_sees_usage(
    studio: LiveServer, visits: Callable[..., Visit], theme: str, viewport: dict
) -> None:
    admin = visits(studio, viewport=viewport, color_scheme=theme)
    admin.log_in(studio.create_user(admin=True))
    page = admin.page
    admin.goto("/admin")
    assert horizontal_overflow(page) == 0
    assert_accessible(page, f"the admin page, {theme}")

    form = page.locator("[data-add-user-form]")
    email = f"added-{theme}-{viewport['width']}@example.test"
    form.get_by_label("Email address").fill(email)
    form.get_by_label("First password").fill("short")
    form.get_by_role("button", name="Add user").click()
    expect(form.get_by_role("alert")).to_contain_text("at least")
    assert_accessible(page, "the add-user form refusing a short password")
    form.get_by_label("First password").fill(PASSWORD)
    form.get_by_label("Administrator").check()
    form.get_by_role("button", name="Add user").click()
    row = page.locator("[data-users-body] tr", has_text=email)
    expect(row).to_have_count(1)
    expect(row.get_by_role("checkbox", name=f"{email} is an administrator")).to_be_checked()
    expect(row.locator("[data-usage]")).to_have_text("0 / 0")

    # The new account signs in with its first password, makes an image, and the admin page counts it.
    newcomer = visits(studio, viewport=viewport, color_scheme=theme)
    newcomer.log_in(email)
    _, first = start_session(newcomer, "a lantern", width=64, height=64, num_images=2)
    assert wait_for_generation(newcomer, first["generation_id"])["status"] == "succeeded"
    admin.goto("/admin")
    expect(page.locator("[data-users-body] tr", has_text=email).locator("[data-usage]")).to_have_text("2 / 2")
    assert horizontal_overflow(page) == 0
    admin.assert_no_errors()


@pytest.mark.parametrize("role", ["member", "admin"])
def test_an_api_key_is_made_with_the_scopes_chosen(studio: LiveServer, visits: Callable[..., Visit], role: str) -> None:
    visit = visits(studio, viewport=PHONE if role == "admin" else WIDE)
    visit.log_in(studio.create_user(admin=role == "admin"))
    page = visit.page
    visit.goto("/settings")
    form = page.locator("[data-key-form]")
    expect(form.get_by_label("Administer")).to_have_count(1 if role == "admin" else 0)
    form.get_by_label("Name").fill("reader")
    form.get_by_label("Read").uncheck()
    form.get_by_label("Generate and change").uncheck()
    form.get_by_role("button", name="Create key").click()
    expect(form.get_by_role("alert")).to_contain_text("at least one")
    form.get_by_label("Read").check()
    form.get_by_role("button", name="Create key").click()
    expect(page.locator("[data-new-key]")).to_be_visible()
    expect(page.locator("[data-keys-body] tr", has_text="reader")).to_contain_text("read")
    [key] = visit.api("GET", "/api-keys")["items"]
    assert key["scopes"] == ["read"]
    assert horizontal_overflow(page) == 0
    visit.assert_no_errors()
