"""The full-screen viewer: opened by click or Enter on the image, zoom and pan, arrows through the outputs,
Escape returns focus, and the metadata panel with what made the image and copy buttons."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.web.axe import assert_accessible
from tests.web.live import PHONE, LiveServer, Visit
from tests.web.studio import expect_step_done, generations_by_step, horizontal_overflow, session_detail, start_session
from tests.web.studio import wait_for_generation as wait_done

pytestmark = pytest.mark.browser
WIDE = {"width": 1440, "height": 900}


def image_width(page: Page) -> float:
    return page.locator(".lightbox-image").evaluate("(image) => image.getBoundingClientRect().width")


def fact(page: Page, name: str):
    return page.locator(f'.lightbox [data-fact="{name}"]')


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_full_screen_viewer_zooms_pans_moves_and_tells_how_the_image_was_made(
    studio: LiveServer, visits: Callable[..., Visit], theme: str
) -> None:
    visit = visits(studio, viewport=WIDE, color_scheme=theme)
    visit.log_in(studio.create_user())
    visit.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=visit.base_url)
    page = visit.page
    session_id, first = start_session(
        visit,
        "A quiet harbour",
        width=256,
        height=256,
        num_images=2,
        prompt_options={"style": "watercolor"},
        params={"steps": 12, "guidance": 6.5},
    )
    wait_done(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1, images=2)
    # A variation of the second image of step 1: its panel says "from 1.2".
    page.get_by_role("button", name=re.compile(r"^Step 1\.2, ")).click()
    page.get_by_role("button", name="Variation").click()
    expect_step_done(page, 2)
    steps = generations_by_step(session_detail(visit, session_id))
    variation = steps[2]

    page.get_by_role("button", name=re.compile(r"^Step 2, ")).click()
    viewer_image = page.locator("[data-viewer-image]")
    viewer_image.click()
    expect(page.get_by_role("dialog", name=re.compile(r"^Step 2 "))).to_be_visible()
    dialog = page.locator("dialog.lightbox")
    expect(fact(page, "From")).to_have_text("from 1.2")
    expect(fact(page, "Seed")).to_have_text(str(variation["outputs"][0]["seed"]))
    expect(fact(page, "Model")).to_have_text(variation["model"])
    expect(fact(page, "Provider")).to_have_text(variation["provider"])
    expect(fact(page, "Size")).to_have_text("256\u00d7256")
    expect(fact(page, "Timings")).to_contain_text("ran ")
    visit.screenshot(f"viewer-fullscreen-{theme}")
    assert_accessible(page, "the full-screen viewer")

    # Zoom: the buttons and keys, 100 % is the image's own size, Fit brings the whole image back.
    fitted = image_width(page)
    page.keyboard.press("+")
    assert image_width(page) > fitted
    dialog.get_by_role("button", name="100 %").click()
    assert image_width(page) == pytest.approx(256, abs=1)
    expect(page.locator(".lightbox-zoom")).to_have_text("100 %")
    dialog.get_by_role("button", name="Fit").click()
    assert image_width(page) == pytest.approx(fitted, abs=1)
    stage = page.locator("[data-lightbox-stage]").bounding_box()
    assert stage is not None
    centre = (stage["x"] + stage["width"] / 2, stage["y"] + stage["height"] / 2)
    page.mouse.move(*centre)
    page.mouse.wheel(0, -400)
    zoomed = image_width(page)
    assert zoomed > fitted
    # Pan: a drag moves the picture by as much as the pointer moved.
    before = page.locator(".lightbox-image").bounding_box()
    page.mouse.down()
    page.mouse.move(centre[0] + 80, centre[1] + 40, steps=4)
    page.mouse.up()
    after = page.locator(".lightbox-image").bounding_box()
    assert before and after
    assert (after["x"] - before["x"], after["y"] - before["y"]) == (pytest.approx(80, abs=1), pytest.approx(40, abs=1))

    # Arrows move through the session's outputs, in step order.
    page.keyboard.press("ArrowLeft")
    expect(dialog.locator(".lightbox-title")).to_contain_text("Step 1, image 2 of 2")
    expect(fact(page, "Prompt as written")).to_have_text("A quiet harbour")
    expect(fact(page, "Prompt sent")).to_contain_text("watercolor")
    expect(fact(page, "Options")).to_have_text("Style: watercolor")
    expect(fact(page, "Steps")).to_have_text("12")
    expect(fact(page, "Guidance")).to_have_text("6.5")
    dialog.get_by_role("button", name="Copy prompt").click()
    assert page.evaluate("navigator.clipboard.readText()") == "A quiet harbour"
    dialog.get_by_role("button", name="Copy seed").click()
    assert page.evaluate("navigator.clipboard.readText()") == str(steps[1]["outputs"][1]["seed"])
    page.keyboard.press("ArrowRight")
    expect(dialog.locator(".lightbox-title")).to_contain_text("Step 2")

    # Escape closes and gives focus back to the image that opened it; Enter on it opens it again.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(viewer_image).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()
    expect(viewer_image).to_be_focused()
    visit.assert_no_errors()


def test_full_screen_viewer_on_a_phone(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    visit = visits(studio, viewport=PHONE)
    visit.log_in(studio.create_user(admin=True))
    page = visit.page
    session_id, first = start_session(visit, "A red kite over hills", width=256, height=256)
    wait_done(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1)
    page.get_by_role("button", name="Full screen").click()
    dialog = page.get_by_role("dialog", name=re.compile(r"^Step 1"))
    expect(dialog).to_be_visible()
    assert horizontal_overflow(page) == 0
    width = page.evaluate("document.querySelector('.lightbox').getBoundingClientRect().width")
    assert width <= PHONE["width"]
    visit.screenshot("viewer-fullscreen-phone")
    assert_accessible(page, "the full-screen viewer on a phone")
    page.keyboard.press("Escape")
    expect(page.get_by_role("button", name="Full screen")).to_be_focused()
    visit.assert_no_errors()


def test_a_first_steps_viewer_offers_no_source_to_compare_with(
    studio: LiveServer, visits: Callable[..., Visit]
) -> None:
    """A first step has no source: the compare choice lists the other outputs only (it once read "null")."""
    visit = visits(studio, viewport=WIDE)
    visit.log_in(studio.create_user())
    page = visit.page
    session_id, first = start_session(visit, "Two boats at dawn", width=128, height=128)
    wait_done(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1)
    page.locator("[data-viewer-image]").click()
    expect(page.get_by_role("dialog", name=re.compile(r"^Step 1"))).to_be_visible()
    choice = page.locator(".lightbox-compare-choice")
    expect(choice).to_contain_text("Compare with")
    expect(choice).not_to_contain_text("null")
    visit.assert_no_errors()


def test_use_these_settings_and_remix_fill_the_composer(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    visit = visits(studio, viewport=WIDE)
    visit.log_in(studio.create_user())
    page = visit.page
    session_id, first = start_session(
        visit,
        "A lantern in the fog",
        width=320,
        height=256,
        num_images=2,
        negative_prompt="people",
        prompt_options={"shot_type": "close-up", "custom": True, "weather": "foggy"},
        params={"steps": 9, "guidance": 4.5, "seed": 1234},
    )
    wait_done(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1, images=2)
    page.get_by_role("button", name=re.compile(r"^Step 1\.1, ")).click()
    expect(page.get_by_role("link", name="Download")).to_have_attribute("download", "a-lantern-in-the-fog-step-1-1.png")

    page.locator("[data-viewer-image]").click()
    page.locator("dialog.lightbox").get_by_role("button", name="Use these settings").click()
    expect(page.locator("dialog.lightbox")).to_be_hidden()
    composer = page.locator("[data-prompt]")
    expect(composer).to_be_focused()
    expect(composer).to_have_value("A lantern in the fog")
    composer.press("Enter")
    expect_step_done(page, 2, images=2)

    page.get_by_role("button", name=re.compile(r"^Step 1\.1, ")).click()
    page.locator("[data-viewer-image]").click()
    page.locator("dialog.lightbox").get_by_role("button", name="Remix").click()
    expect(composer).to_have_value("A lantern in the fog")
    composer.press("Enter")
    expect_step_done(page, 3, images=2)

    steps = generations_by_step(session_detail(visit, session_id))
    original, reused, remixed = steps[1], steps[2], steps[3]
    for copy in (reused, remixed):
        assert copy["type"] == "text2img"
        assert copy["prompt"] == original["prompt"]
        assert copy["negative_prompt"] == "people"
        assert copy["prompt_options"] == original["prompt_options"]
        assert (copy["width"], copy["height"], copy["num_images"]) == (320, 256, 2)
        assert (copy["params"]["steps"], copy["params"]["guidance"]) == (9, 4.5)
        assert (copy["provider"], copy["model"]) == (original["provider"], original["model"])
    assert reused["params"]["seed"] == original["outputs"][0]["seed"]
    assert remixed["params"]["seed"] != original["outputs"][0]["seed"]
    visit.assert_no_errors()
