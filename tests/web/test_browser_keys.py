"""Enter sends and Shift+Enter makes a new line, in the landing prompt and in the composer, as in chat apps."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.web.live import LiveServer, Visit
from tests.web.studio import expect_step_done, generations_by_step, session_detail

pytestmark = pytest.mark.browser
SESSION_URL = re.compile(r"/sessions/[0-9a-f-]{36}$")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_enter_sends_and_shift_enter_is_a_new_line(
    studio: LiveServer, visits: Callable[..., Visit], theme: str
) -> None:
    visit = visits(studio, color_scheme=theme)
    visit.log_in(studio.create_user())
    page = visit.page
    keyboard = page.keyboard
    visit.goto("/")
    landing = page.locator("#start-prompt")
    expect(landing).to_be_focused()
    keyboard.type("A harbour at dawn")
    keyboard.press("Shift+Enter")
    keyboard.type("fishing boats")
    expect(landing).to_have_value("A harbour at dawn\nfishing boats")
    expect(page).not_to_have_url(SESSION_URL)
    keyboard.press("Enter")
    expect(page).to_have_url(SESSION_URL)
    expect_step_done(page, 1)

    composer = page.locator("[data-prompt]")
    expect(composer).to_be_focused()
    keyboard.type("warmer light")
    keyboard.press("Shift+Enter")
    keyboard.type("and gulls")
    expect(composer).to_have_value("warmer light\nand gulls")
    expect(page.locator(".turn-assistant")).to_have_count(1)

    # Enter in another field of the form keeps its own meaning: it sends nothing.
    page.get_by_text("Model and parameters").click()
    page.locator("#param-seed").fill("42")
    page.locator("#param-seed").press("Enter")
    expect(composer).to_have_value("warmer light\nand gulls")

    composer.press("Enter")
    expect_step_done(page, 2)
    expect(composer).to_have_value("")
    steps = generations_by_step(session_detail(visit, page.url.rsplit("/", 1)[1]))
    assert steps[1]["prompt"] == "A harbour at dawn\nfishing boats"
    assert steps[2]["prompt"] == "warmer light\nand gulls"
    assert steps[2]["params"]["seed"] == 42
    visit.assert_no_errors()
