"""Looking closely and comparing: the before/after slider between an output and its source (keyboard and
pointer), two outputs side by side, a batch shown as a contact sheet, new results taking the stage, and
"Duplicate step"."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Locator, Page, expect

from tests.web.axe import assert_accessible
from tests.web.live import PHONE, LiveServer, Visit
from tests.web.studio import (
    SLOW_TURN,
    expect_step_done,
    generations_by_step,
    horizontal_overflow,
    session_detail,
    start_session,
    submit_prompt,
    turn,
    wait_for_generation,
)

pytestmark = pytest.mark.browser
WIDE = {"width": 1440, "height": 900}
SHOTS = Path("/work/notes/shots")


def keep_shot(visit: Visit, name: str) -> None:
    """A screenshot in the test artifacts, and a copy with the notes when that folder exists."""
    path = visit.screenshot(name)
    if SHOTS.is_dir():
        shutil.copy(path, SHOTS / path.name)


def signed_in(studio: LiveServer, visits: Callable[..., Visit], role: str, **options: object) -> Visit:
    visit = visits(studio, **options)
    visit.log_in(studio.create_user(admin=role == "admin"))
    return visit


def pixels(visit: Visit, generation: dict) -> bytes:
    """The first output's picture (its file differs by the generation's metadata it carries)."""
    response = visit.context.request.get(f"{visit.base_url}{generation['outputs'][0]['content_url']}")
    assert response.ok
    return Image.open(io.BytesIO(response.body())).convert("RGB").tobytes()


def loaded_width(image: Locator) -> int:
    """The natural width of the picture an <img> shows, once loaded. Read in the same check as "loaded": a newer
    preview may replace the picture at any moment, and until it loads its width is 0."""
    handle = image.page.wait_for_function(
        "(image) => image.complete && image.naturalWidth", arg=image.element_handle(), timeout=30_000
    )
    return handle.json_value()


def divider(page: Page) -> int:
    return int(page.locator("[data-compare-range]").input_value())


def clipped_from(page: Page) -> str:
    return page.locator(".compare-after").evaluate("(image) => image.style.clipPath")


@pytest.mark.parametrize(("theme", "role"), [("light", "member"), ("dark", "admin")])
def test_compare_an_output_with_its_source_and_with_another_output(
    studio: LiveServer, visits: Callable[..., Visit], theme: str, role: str
) -> None:
    visit = signed_in(studio, visits, role, viewport=WIDE, color_scheme=theme)
    page = visit.page
    session_id, first = start_session(visit, "A quiet harbour", width=256, height=256, num_images=2)
    wait_for_generation(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1, images=2)
    page.get_by_role("button", name=re.compile(r"^Step 1\.2, ")).click()
    page.get_by_role("button", name="Variation").click()
    expect_step_done(page, 2)
    steps = generations_by_step(session_detail(visit, session_id))
    source, made = steps[1]["outputs"][1], steps[2]["outputs"][0]

    # A finished variation takes the stage by itself.
    expect(page.locator("[data-viewer-meta]")).to_contain_text("Step 2")
    page.locator("[data-viewer-actions]").get_by_role("button", name="Compare").click()
    dialog = page.locator("dialog.lightbox")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Compare with")).to_have_value("source")
    slider = page.get_by_role("slider", name=re.compile(r"^Divider between Source, step 1\.2 \(left\) and Step 2"))
    expect(slider).to_be_visible()
    expect(page.locator("[data-lightbox-stage]")).to_be_hidden()
    # Before on the left is the source image, after over it from the divider on is the variation.
    assert page.locator(".compare-image:not(.compare-after)").get_attribute("src") == source["content_url"]
    assert page.locator(".compare-after").get_attribute("src") == made["content_url"]
    expect(page.locator(".compare-image:not(.compare-after)")).to_have_js_property("complete", True)
    assert divider(page) == 50 and clipped_from(page) == "inset(0px 0px 0px 50%)"
    keep_shot(visit, f"after-compare-slider-{theme}")
    assert_accessible(page, f"the compare slider, {theme}")

    # The keyboard moves the divider (and not to another image); Home and End go to the edges.
    slider.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert divider(page) == 40 and clipped_from(page) == "inset(0px 0px 0px 40%)"
    expect(dialog.locator(".lightbox-title")).to_contain_text("Step 2")
    page.keyboard.press("End")
    assert divider(page) == 100
    page.keyboard.press("Home")
    assert divider(page) == 0
    # A drag on the picture puts the divider under the pointer.
    frame = page.locator("[data-compare-frame]").bounding_box()
    assert frame is not None
    page.mouse.move(frame["x"] + frame["width"] * 0.25, frame["y"] + frame["height"] / 2)
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] * 0.75, frame["y"] + frame["height"] / 2, steps=3)
    page.mouse.up()
    assert divider(page) == pytest.approx(75, abs=1)

    # Side by side with another output of the session.
    page.get_by_label("Compare with").select_option(label="Step 1.1")
    dialog.get_by_role("button", name="Side by side").click()
    figures = page.locator("[data-compare-side] figcaption")
    expect(figures).to_have_text(["Step 1.1", "Step 2"])
    expect(page.locator("[data-compare-slider]")).to_be_hidden()
    assert page.locator(".compare-side-image").first.get_attribute("src") == steps[1]["outputs"][0]["content_url"]
    keep_shot(visit, f"after-compare-side-by-side-{theme}")
    assert_accessible(page, f"two outputs side by side, {theme}")

    # Back to the image alone: the zoomable stage returns.
    page.get_by_label("Compare with").select_option(value="")
    expect(page.locator("[data-lightbox-stage]")).to_be_visible()
    expect(page.locator("[data-compare]")).to_be_hidden()
    expect(dialog.get_by_role("button", name="Zoom in")).to_be_enabled()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    visit.assert_no_errors()


def test_compare_on_a_phone(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    visit = signed_in(studio, visits, "member", viewport=PHONE)
    page = visit.page
    session_id, first = start_session(visit, "A red kite over hills", width=256, height=256)
    wait_for_generation(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1)
    page.get_by_role("button", name=re.compile(r"^Upscale ")).first.click()
    expect_step_done(page, 2)
    page.locator("[data-viewer-actions]").get_by_role("button", name="Compare").click()
    expect(page.get_by_role("slider", name=re.compile(r"^Divider between Source, step 1 "))).to_be_visible()
    box = page.locator("[data-compare-frame]").bounding_box()
    assert box is not None and box["width"] <= PHONE["width"] and box["height"] > 100
    assert horizontal_overflow(page) == 0
    keep_shot(visit, "after-compare-slider-phone")
    assert_accessible(page, "the compare slider on a phone")
    visit.assert_no_errors()


@pytest.mark.parametrize("role", ["member", "admin"])
def test_a_batch_is_a_contact_sheet_until_one_is_picked(
    studio: LiveServer, visits: Callable[..., Visit], role: str
) -> None:
    visit = signed_in(studio, visits, role, viewport=PHONE if role == "member" else WIDE)
    page = visit.page
    session_id, first = start_session(visit, "Three small boats", width=256, height=256, num_images=3)
    wait_for_generation(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1, images=3)

    sheet = page.get_by_role("group", name=re.compile(r"^Step 1: 3 images"))
    expect(sheet).to_be_visible()
    tiles = sheet.get_by_role("button")
    expect(tiles).to_have_count(3)
    # Nothing acts on "image 1" quietly: no image, no image actions until one is picked.
    expect(page.locator("[data-viewer-image]")).to_be_hidden()
    expect(page.locator("[data-viewer-actions]")).to_be_hidden()
    expect(sheet.locator('[tabindex="0"]')).to_have_count(1)
    assert horizontal_overflow(page) == 0
    assert_accessible(page, f"a batch as a contact sheet, {role}")
    tiles.first.focus()
    page.keyboard.press("ArrowRight")
    expect(tiles.nth(1)).to_be_focused()
    page.keyboard.press("Enter")

    expect(sheet).to_be_hidden()
    expect(page.locator("[data-viewer-image]")).to_be_visible()
    expect(page.locator("[data-viewer-meta]")).to_contain_text("Step 1, image 2 of 3")
    visit.assert_no_errors()


def test_duplicate_step_makes_the_same_step_again(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    visit = signed_in(studio, visits, "member", viewport=WIDE)
    page = visit.page
    session_id, first = start_session(
        visit,
        "A lantern in the fog",
        width=192,
        height=128,
        negative_prompt="people",
        prompt_options={"weather": "foggy"},
        params={"steps": 7, "guidance": 5.5},
    )
    wait_for_generation(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1)
    page.locator("[data-viewer-image]").click()
    page.locator("dialog.lightbox").get_by_role("button", name="Duplicate step").click()
    expect(page.locator("dialog.lightbox")).to_be_hidden()
    expect_step_done(page, 2)
    page.get_by_role("button", name="Variation").click()
    expect_step_done(page, 3)
    page.locator("[data-viewer-image]").click()
    page.locator("dialog.lightbox").get_by_role("button", name="Duplicate step").click()
    expect_step_done(page, 4)

    steps = generations_by_step(session_detail(visit, session_id))
    original, again = steps[1], steps[2]
    for name in ("type", "prompt", "negative_prompt", "prompt_options", "width", "height", "num_images", "model"):
        assert again[name] == original[name], name
    assert (again["params"]["steps"], again["params"]["guidance"]) == (7, 5.5)
    # The seed it drew the first time, so the same picture comes out.
    assert again["params"]["seed"] == original["outputs"][0]["seed"]
    assert pixels(visit, again) == pixels(visit, original)
    # A variation is duplicated as a variation of the same image.
    variation, copy = steps[3], steps[4]
    assert copy["type"] == "variation"
    assert copy["inputs"] == variation["inputs"]
    assert pixels(visit, copy) == pixels(visit, variation)
    visit.assert_no_errors()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_live_previews_with_each_images_progress_and_the_time_left(
    studio: LiveServer, visits: Callable[..., Visit], theme: str
) -> None:
    visit = signed_in(studio, visits, "member", viewport=PHONE, color_scheme=theme)
    page = visit.page
    slow = {**SLOW_TURN, "num_images": 3, "params": {**SLOW_TURN["params"], "extra": {"partial_images": 3}}}
    session_id, first = start_session(visit, "A sprawling detailed city", **slow)
    visit.goto(f"/sessions/{session_id}")
    running = turn(page, 1)
    try:
        # The first image's picture so far, in its tile and on the stage (nothing is finished yet).
        tile = running.locator('[data-preview-tile="0"] img')
        expect(tile).to_be_visible(timeout=60_000)
        assert loaded_width(tile) == 2048
        stage = page.locator("[data-live-preview] img")
        expect(stage).to_be_visible()
        assert loaded_width(stage) == 2048
        # Each image has its own progress: the renderer makes them one after the other.
        expect(running.locator("[data-image-progress]")).to_have_count(3)
        expect(running.locator('[data-image-progress="0"]')).not_to_have_text("0 %")
        shares = [int(text.rstrip(" %")) for text in running.locator("[data-image-progress]").all_inner_texts()]
        # While the batch runs, an earlier image is always further along than the last one.
        assert shares == sorted(shares, reverse=True) and shares[0] > shares[-1], shares
        expect(running.locator("[data-progress-text]")).to_contain_text(re.compile(r"about .+ left"), timeout=30_000)
        assert horizontal_overflow(page) == 0
        keep_shot(visit, f"after-session-phone-live-preview-{theme}")
        assert_accessible(page, f"a live preview on a phone, {theme}")
    finally:
        visit.api("POST", f"/generations/{first['generation_id']}/cancel")
    assert wait_for_generation(visit, first["generation_id"])["status"] == "canceled"
    expect(running).to_have_attribute("data-status", "canceled")

    # Turns sent from the composer ask for previews.
    with page.expect_request(lambda request: request.url.endswith("/messages") and request.method == "POST") as sent:
        submit_prompt(page, "a small red boat")
    assert sent.value.post_data_json["params"]["extra"] == {"partial_images": 3}
    expect_step_done(page, 2)
    keep_shot(visit, f"after-session-phone-{theme}")
    visit.assert_no_errors()


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_what_carries_over_is_shown_and_cleared_in_one_click(
    studio: LiveServer, visits: Callable[..., Visit], theme: str
) -> None:
    visit = signed_in(studio, visits, "member", viewport=WIDE, color_scheme=theme)
    page = visit.page
    session_id, first = start_session(visit, "A quiet pond", width=256, height=256)
    wait_for_generation(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1)
    carry = page.locator("[data-carry-over]")
    expect(carry).to_be_hidden()  # a fresh composer carries nothing

    page.get_by_text("Prompt builder").click()
    page.get_by_label("Style", exact=True).select_option(index=1)
    style = page.get_by_label("Style", exact=True).input_value()
    page.get_by_text("Model and parameters").click()
    page.get_by_label("Images", exact=True).fill("2")
    expect(carry).to_have_text(re.compile(rf"Carried into the next turn: Style: {style} · 2 images\s*Clear"))
    submit_prompt(page, "a koi at noon")
    expect_step_done(page, 2, images=2)
    # Still set for the turn after, and still said so.
    expect(carry).to_contain_text(f"Style: {style} · 2 images")
    assert_accessible(page, f"the composer with settings carried over, {theme}")

    carry.get_by_role("button", name="Clear").click()
    expect(carry).to_be_hidden()
    expect(page.locator("[data-prompt]")).to_be_focused()
    expect(page.get_by_label("Style", exact=True)).to_have_value("")
    expect(page.get_by_label("Images", exact=True)).to_have_value("1")
    submit_prompt(page, "a heron at dusk")
    expect_step_done(page, 3)
    steps = generations_by_step(session_detail(visit, session_id))
    assert (steps[2]["prompt_options"]["style"], steps[2]["num_images"]) == (style, 2)
    assert (steps[3]["prompt_options"]["style"], steps[3]["num_images"]) == (None, 1)
    visit.assert_no_errors()


def test_the_first_turn_from_the_landing_page_asks_for_previews(
    studio: LiveServer, visits: Callable[..., Visit]
) -> None:
    visit = signed_in(studio, visits, "admin", viewport=WIDE)
    page = visit.page
    visit.goto("/")
    with page.expect_request(lambda request: request.url.endswith("/messages") and request.method == "POST") as sent:
        page.locator("#start-prompt").fill("A harbour at dawn")
        page.locator("#start-prompt").press("Enter")
    body = sent.value.post_data_json
    assert body["params"]["extra"] == {"partial_images": 3} and body["content"] == "A harbour at dawn"
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]{36}$"))
    expect_step_done(page, 1)
    visit.assert_no_errors()
