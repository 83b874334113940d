"""Every page fits the screen and passes axe-core, for an administrator and a plain user, in both themes, on a
phone and on a wide desktop; and the details once seen broken stay fixed (a "null" under the badges, the logo,
a canceled step's frame, the seed placeholder, one tab stop per list of thumbnails, the title under the top bar).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.web.axe import assert_accessible
from tests.web.live import PHONE, LiveServer, Visit
from tests.web.studio import (
    SLOW_TURN,
    expect_step_done,
    horizontal_overflow,
    start_session,
    turn,
    wait_for_generation,
)

pytestmark = pytest.mark.browser
WIDE = {"width": 1440, "height": 900}
TIMES = "\u00d7"
ROLES = ["admin", "member"]
THEMES = ["light", "dark"]


def signed_in(studio: LiveServer, visits: Callable[..., Visit], role: str, **options: object) -> Visit:
    visit = visits(studio, **options)
    visit.log_in(studio.create_user(admin=role == "admin"))
    return visit


def finished_session(visit: Visit, prompt: str, **overrides: object) -> str:
    session_id, first = start_session(visit, prompt, **overrides)
    assert wait_for_generation(visit, first["generation_id"])["status"] == "succeeded"
    return session_id


def assert_fits(page: Page, where: str) -> None:
    assert horizontal_overflow(page) == 0, f"{where} is wider than the {page.viewport_size} screen"


def assert_title_clear_of_top_bar(page: Page) -> None:
    """The session opens at its top: the title is below the sticky top bar, and it is what is drawn there."""
    assert page.evaluate("window.scrollY") == 0
    topbar = page.locator(".topbar").bounding_box()
    title = page.locator("[data-session-title]").bounding_box()
    assert topbar and title and title["y"] >= topbar["y"] + topbar["height"]
    for action in ("Rename", "Archive", "Delete"):
        button = page.locator(".session-actions").get_by_role("button", name=action, exact=True)
        box = button.bounding_box()
        assert box is not None
        hit = page.evaluate(
            "([x, y]) => document.elementFromPoint(x, y)?.closest('button')?.textContent.trim()",
            [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
        )
        assert hit == action, f"{action} is covered by {hit!r}"


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("role", ROLES)
def test_every_page_fits_a_phone_and_passes_axe(
    studio: LiveServer, visits: Callable[..., Visit], role: str, theme: str
) -> None:
    visit = signed_in(studio, visits, role, viewport=PHONE, color_scheme=theme)
    page = visit.page
    session_id = finished_session(visit, "A lighthouse in a storm", width=256, height=256, num_images=2)
    project_id = visit.api("POST", "/projects", {"name": "Harbour posters"})["id"]

    pages = ("/", "/gallery", "/projects", f"/projects/{project_id}", "/settings", "/admin", "/no-such-page")
    for path in pages:
        visit.goto(path)
        if path == "/no-such-page":
            expect(page.get_by_role("heading", name="This page is not here")).to_be_visible()
        assert_fits(page, path)
        assert_accessible(page, f"{path} as {role}, {theme}")

    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1, images=2)
    assert_fits(page, "the session page")
    assert_title_clear_of_top_bar(page)
    assert_accessible(page, f"session page as {role}, {theme}")
    # /no-such-page is answered 404, and /admin 403 to a plain user: the pages say so, the console notes it.
    visit.assert_no_errors(allow=("status of 404", "status of 403"))


@pytest.mark.parametrize("theme", THEMES)
def test_wide_session_page_after_upscale_and_variation(
    studio: LiveServer, visits: Callable[..., Visit], theme: str
) -> None:
    visit = signed_in(studio, visits, "member", viewport=WIDE, color_scheme=theme)
    page = visit.page
    session_id = finished_session(visit, "A small pixel robot", width=256, height=256, num_images=2)
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1, images=2)
    assert_title_clear_of_top_bar(page)

    # The batch is a contact sheet until an image is picked; then its actions are offered.
    page.get_by_role("button", name=re.compile(r"^Step 1\.1, ")).click()
    page.get_by_role("button", name=f"Upscale {TIMES}2").click()
    expect_step_done(page, 2)
    page.get_by_role("button", name="Variation").click()
    expect_step_done(page, 3)
    # An upscale and a variation have no prompt of their own: nothing, not "null", under the badges.
    for step in (2, 3):
        page.get_by_role("button", name=re.compile(rf"^Step {step}, ")).click()
        expect(page.locator("[data-viewer-meta]")).to_contain_text(f"Step {step}")
        expect(page.locator("[data-viewer-meta]")).not_to_contain_text("null")
    assert_fits(page, "the session page")
    assert_accessible(page, f"session page with three steps, {theme}")

    # The rail is one tab stop; its buttons are named by the number they show ("1.2").
    rail = page.locator(".rail-button")
    expect(rail).to_have_count(4)
    expect(page.get_by_role("button", name=re.compile(r"^Step 1\.2, "))).to_have_count(1)
    expect(page.locator('.rail-button[tabindex="0"]')).to_have_count(1)
    expect(page.locator(".turn-assistant").first.locator('.turn-image[tabindex="0"]')).to_have_count(1)
    page.locator('.rail-button[tabindex="0"]').focus()
    page.keyboard.press("Home")
    expect(rail.first).to_be_focused()
    expect(rail.first).to_have_attribute("tabindex", "0")
    page.keyboard.press("ArrowRight")
    expect(rail.nth(1)).to_be_focused()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('rail-button')") is False

    # The parameters drawer shows the seed field's whole placeholder.
    page.get_by_text("Model and parameters").click()
    seed = page.locator("#param-seed")
    expect(seed).to_be_visible()
    room = seed.evaluate(
        """(input) => {
          const style = getComputedStyle(input);
          const context = document.createElement('canvas').getContext('2d');
          context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
          const inner = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
          return inner - 20 - context.measureText(input.placeholder).width;  // 20 px for the spin buttons
        }"""
    )
    assert room >= 0, f"the seed placeholder is clipped by {-room:.0f}px"
    assert_accessible(page, f"session page with the parameters open, {theme}")
    visit.assert_no_errors()


def test_a_canceled_step_has_a_single_frame(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    visit = signed_in(studio, visits, "member", viewport=WIDE)
    page = visit.page
    session_id, first = start_session(visit, "A sprawling detailed city", **SLOW_TURN)
    visit.api("POST", f"/generations/{first['generation_id']}/cancel")
    assert wait_for_generation(visit, first["generation_id"])["status"] == "canceled"
    visit.goto(f"/sessions/{session_id}")
    canceled = turn(page, 1)
    expect(canceled).to_have_attribute("data-status", "canceled")
    expect(canceled).to_contain_text("This step was canceled.")
    # The note is tinted inside the card; the turn around the card draws nothing of its own.
    outer = canceled.evaluate("(node) => [getComputedStyle(node).backgroundColor, getComputedStyle(node).paddingTop]")
    assert outer == ["rgba(0, 0, 0, 0)", "0px"]
    assert canceled.locator(".turn-canceled-note").evaluate("(node) => getComputedStyle(node).backgroundColor") != (
        "rgba(0, 0, 0, 0)"
    )
    assert_accessible(page, "session page with a canceled step")
    visit.assert_no_errors()


def test_the_logo_is_a_picture_not_a_solid_square(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    visit = signed_in(studio, visits, "admin", viewport=WIDE)
    visit.goto("/")
    shot = Image.open(io.BytesIO(visit.page.locator(".brand-mark").screenshot())).convert("RGB")
    scale = shot.width / 24  # the mark's viewBox is 24 units; its frame spans 4 to 20
    frame = shot.crop((round(5.5 * scale), round(5.5 * scale), round(18.5 * scale), round(18.5 * scale)))
    accent = frame.getpixel((frame.width // 2, 1))  # the frame's top band
    pixels = [frame.getpixel((x, y)) for x in range(frame.width) for y in range(frame.height)]
    # The mountains and the sun (a fifth of the frame's inside) are cut out, not painted in the same colour.
    cut_out = sum(1 for pixel in pixels if sum(abs(a - b) for a, b in zip(pixel, accent, strict=True)) > 60)
    assert cut_out / len(pixels) > 0.15, f"only {cut_out} of {len(pixels)} pixels of the frame are cut out"


@pytest.mark.parametrize("theme", THEMES)
def test_the_sign_in_pages_fit_a_phone_and_pass_axe(
    studio: LiveServer, visits: Callable[..., Visit], theme: str
) -> None:
    studio.create_user(admin=True)  # past the first-run setup
    visit = visits(studio, viewport=PHONE, color_scheme=theme)
    for path in ("/login", "/signup"):
        visit.goto(path)
        assert_fits(visit.page, path)
        assert_accessible(visit.page, f"{path}, {theme}")
    # Sign-up is closed on this studio (admin mode): the page says so and offers no form.
    expect(visit.page.get_by_text("Sign-up is closed")).to_be_visible()
    expect(visit.page.locator("[data-auth-form]")).to_have_count(0)
    expect(visit.page.get_by_label("Password")).to_have_count(0)
    visit.assert_no_errors()
