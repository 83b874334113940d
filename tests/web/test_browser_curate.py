"""Curating in the browser: the gallery (filters, infinite scroll, stars, a zip of a selection, deleting several),
and in a session starring an image, picking the cover, deleting one image and deleting a finished step. On a
phone and a wide screen, in both themes, for an administrator and a plain user, with axe-core after each step."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.web.axe import assert_accessible
from tests.web.live import PHONE, LiveServer, Visit
from tests.web.studio import expect_step_done, horizontal_overflow, start_session, turn, wait_for_generation

pytestmark = pytest.mark.browser
WIDE = {"width": 1440, "height": 900}
SHOTS = Path("/work/notes/shots")


def signed_in(studio: LiveServer, visits: Callable[..., Visit], role: str, **options: object) -> Visit:
    visit = visits(studio, **options)
    visit.log_in(studio.create_user(admin=role == "admin"))
    return visit


def finished_session(visit: Visit, prompt: str, title: str | None = None, **overrides: object) -> str:
    session_id, first = start_session(visit, prompt, **{"width": 128, "height": 128, **overrides})
    assert wait_for_generation(visit, first["generation_id"])["status"] == "succeeded"
    if title:
        visit.api("PATCH", f"/sessions/{session_id}", {"title": title})
    return session_id


def checked(page: Page, where: str) -> None:
    assert horizontal_overflow(page) == 0, f"{where} is wider than the {page.viewport_size} screen"
    assert_accessible(page, where)


def confirm(page: Page, label: str) -> None:
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    assert_accessible(page, f"the confirmation to {label}")
    dialog.get_by_role("button", name=label).click()
    expect(dialog).to_be_hidden()


@pytest.mark.parametrize(
    ("role", "theme", "viewport"),
    [("member", "light", WIDE), ("admin", "dark", WIDE), ("member", "dark", PHONE), ("admin", "light", PHONE)],
)
def test_gallery_filters_stars_downloads_and_deletes(
    studio: LiveServer, visits: Callable[..., Visit], role: str, theme: str, viewport: dict
) -> None:
    visit = signed_in(studio, visits, role, viewport=viewport, color_scheme=theme)
    page = visit.page
    harbour = finished_session(visit, "A red boat in a harbour", "Harbour", num_images=3)
    finished_session(visit, "A green fern", "Forest", width=192, height=128, params={"seed": 777})
    cards = page.locator(".gallery-card")

    visit.goto("/gallery")
    expect(cards).to_have_count(4)
    checked(page, f"the gallery as {role}, {theme}")
    expect(page.get_by_role("link", name="Gallery")).to_have_attribute("aria-current", "page")

    page.get_by_label("Prompt contains").fill("BOAT")
    expect(cards).to_have_count(3)
    page.get_by_label("Prompt contains").fill("")
    page.get_by_label("Size").fill("192x128")
    expect(cards).to_have_count(1)
    page.get_by_label("Size").fill("wide")
    expect(page.locator("[data-gallery-filters] [role=alert]")).to_contain_text("for example 1024x768")
    checked(page, "the gallery refusing a size")
    page.get_by_role("button", name="Clear filters").click()
    expect(cards).to_have_count(4)
    page.get_by_label("Seed").fill("777")
    expect(cards).to_have_count(1)
    page.get_by_label("Seed").fill("")
    expect(cards).to_have_count(4)

    # Star one from its card, then see only starred ones.
    star = cards.first.get_by_role("button", name=re.compile(r"^Star "))
    star.click()
    expect(star).to_have_attribute("aria-pressed", "true")
    page.get_by_label("Starred only").check()
    expect(cards).to_have_count(1)
    assert visit.api("GET", "/assets?starred=true")["items"][0]["prompt"] == "A green fern"
    page.get_by_label("Starred only").uncheck()
    expect(cards).to_have_count(4)

    # Select the harbour's three images: a zip named for what each one is.
    for index in (1, 2, 3):
        cards.nth(index).get_by_role("checkbox").check()
    expect(page.locator("[data-selection-count]")).to_have_text("3 images selected")
    checked(page, "the gallery with a selection")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download zip").click()
    names = zipfile.ZipFile(io.BytesIO(Path(download.value.path()).read_bytes())).namelist()
    assert sorted(names) == ["harbour-step-1-1.png", "harbour-step-1-2.png", "harbour-step-1-3.png"]

    page.get_by_role("button", name="Star", exact=True).click()
    expect(page.locator('.gallery-star[aria-pressed="true"]')).to_have_count(4)
    if viewport == WIDE:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"gallery-{theme}.png"))
    page.get_by_role("button", name="Delete", exact=True).click()
    confirm(page, "Delete")
    expect(cards).to_have_count(1)
    expect(page.locator("[data-selection-count]")).to_have_text("No images selected")
    detail = visit.api("GET", f"/sessions/{harbour}")
    assert (detail["image_count"], detail["thumbnail_asset_id"]) == (0, None)
    checked(page, "the gallery after deleting")
    visit.assert_no_errors()


def test_gallery_loads_more_as_it_scrolls(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    visit = signed_in(studio, visits, "member", viewport=WIDE)
    page = visit.page
    # 35 images: one page of 30, then the rest once the end of the list comes into view.
    for count in (10, 10, 10, 5):
        finished_session(visit, f"{count} small stones", width=64, height=64, num_images=count)
    visit.goto("/gallery")
    cards = page.locator(".gallery-card")
    expect(cards).to_have_count(30)
    page.locator("[data-gallery-sentinel]").scroll_into_view_if_needed()
    expect(cards).to_have_count(35)
    expect(page.locator("[data-gallery-more]")).to_be_hidden()
    ids = cards.evaluate_all("(nodes) => nodes.map((node) => node.dataset.assetId)")
    assert len(set(ids)) == 35
    # The images are one tab stop; arrows move along them.
    expect(page.locator('.gallery-link[tabindex="0"]')).to_have_count(1)
    page.locator('.gallery-link[tabindex="0"]').focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator(".gallery-link").nth(1)).to_be_focused()
    expect(page.locator('.gallery-link[tabindex="0"]')).to_have_count(1)
    visit.assert_no_errors()


@pytest.mark.parametrize(("role", "theme", "viewport"), [("member", "dark", WIDE), ("admin", "light", PHONE)])
def test_session_stars_covers_and_deletes_images_and_steps(
    studio: LiveServer, visits: Callable[..., Visit], role: str, theme: str, viewport: dict
) -> None:
    visit = signed_in(studio, visits, role, viewport=viewport, color_scheme=theme)
    page = visit.page
    session_id = finished_session(visit, "A paper crane", num_images=2)
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1, images=2)
    first_step = visit.api("GET", f"/sessions/{session_id}")["generations"][0]
    outputs = sorted(first_step["outputs"], key=lambda output: output["batch_index"])

    # The first image: star it and make it the cover.
    turn(page, 1).locator(".turn-image").first.click()
    actions = page.locator("[data-viewer-actions]")
    actions.get_by_role("button", name="Star", exact=True).click()
    expect(actions.get_by_role("button", name="Star", exact=True)).to_have_attribute("aria-pressed", "true")
    actions.get_by_role("button", name="Cover", exact=True).click()
    expect(actions.get_by_role("button", name="Cover", exact=True)).to_have_attribute("aria-pressed", "true")
    detail = visit.api("GET", f"/sessions/{session_id}")
    assert (detail["thumbnail_asset_id"], detail["thumbnail_is_custom"]) == (outputs[0]["id"], True)
    assert visit.api("GET", f"/assets/{outputs[0]['id']}")["starred_at"] is not None
    checked(page, f"the session with a starred cover, {role}, {theme}")

    # Delete it: the cover goes back to the image left, the step keeps that one.
    actions.get_by_role("button", name="Delete image").click()
    confirm(page, "Delete image")
    expect(turn(page, 1).locator(".turn-image")).to_have_count(1)
    detail = visit.api("GET", f"/sessions/{session_id}")
    assert (detail["image_count"], detail["thumbnail_asset_id"]) == (1, outputs[1]["id"])

    # A second step, then delete the first, finished one: the second becomes step 1.
    page.locator("[data-prompt]").fill("now folded in blue")
    page.locator("[data-prompt]").press("Enter")
    expect_step_done(page, 2)
    turn(page, 1).get_by_role("button", name="Delete step").click()
    confirm(page, "Delete step")
    expect(page.locator(".turn-assistant")).to_have_count(1)
    expect(turn(page, 1)).to_have_attribute("data-status", "succeeded")
    expect(page.locator("[data-timeline]").get_by_text("A paper crane", exact=True)).to_have_count(0)
    detail = visit.api("GET", f"/sessions/{session_id}")
    assert len(detail["generations"]) == 1 and detail["generations"][0]["parent_generation_id"] is None
    assert detail["image_count"] == 1
    checked(page, f"the session after deleting a step, {role}, {theme}")
    visit.assert_no_errors()


@pytest.mark.parametrize(("role", "theme", "viewport"), [("member", "light", WIDE), ("admin", "dark", PHONE)])
def test_the_landing_prompt_offers_what_the_first_image_needs(
    studio: LiveServer, visits: Callable[..., Visit], role: str, theme: str, viewport: dict, tmp_path: Path
) -> None:
    visit = signed_in(studio, visits, role, viewport=viewport, color_scheme=theme)
    page = visit.page
    start = tmp_path / "harbour.png"
    Image.new("RGB", (96, 64), (20, 90, 160)).save(start)
    visit.goto("/")
    checked(page, f"the landing page, {role}, {theme}")
    page.get_by_role("radio", name="16:9").check()
    page.get_by_role("radio", name="2", exact=True).check()
    page.get_by_text("Style and shot").click()
    page.get_by_role("radio", name="Watercolor").check()
    page.get_by_role("radio", name="Wide shot").check()
    expect(page.locator("[data-start-more-count]")).to_have_text("(2 chosen)")
    page.locator("[data-start-image-input]").set_input_files(str(start))
    expect(page.locator("[data-start-image-name]")).to_have_text("harbour.png")
    checked(page, f"the landing page with its options chosen, {role}, {theme}")
    page.get_by_role("button", name="Remove start image").click()
    expect(page.locator("[data-start-image]")).to_be_hidden()
    page.locator("[data-start-image-input]").set_input_files(str(start))

    page.get_by_label("Describe the image you want to create").fill("a harbour at dawn")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_url(re.compile(r"/sessions/"))
    session_id = page.url.rsplit("/", 1)[1]
    generation = visit.api("GET", f"/sessions/{session_id}")["generations"][0]
    assert (generation["type"], generation["aspect_ratio"], generation["num_images"]) == ("img2img", "16:9", 2)
    assert (generation["prompt_options"]["style"], generation["prompt_options"]["shot_type"]) == (
        "watercolor",
        "wide shot",
    )
    assert [item["role"] for item in generation["inputs"]] == ["init"]
    expect_step_done(page, 1, images=2)
    visit.assert_no_errors()


def in_view(page: Page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    size = page.viewport_size
    return bool(box and size and box["y"] >= 0 and box["y"] + box["height"] <= size["height"])


@pytest.mark.parametrize(("theme", "viewport"), [("light", WIDE), ("dark", PHONE)])
def test_the_prompt_and_generate_stay_in_view_with_a_panel_open(
    studio: LiveServer, visits: Callable[..., Visit], theme: str, viewport: dict
) -> None:
    visit = signed_in(studio, visits, "member", viewport=viewport, color_scheme=theme)
    page = visit.page
    session_id = finished_session(visit, "A quiet pier", num_images=2)
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, 1, images=2)
    builder, params = page.locator("[data-builder-panel]"), page.locator("[data-params-panel]")

    page.get_by_text("Model and parameters").click()
    expect(params).to_have_attribute("open", "")
    page.get_by_text("Prompt builder").click()
    expect(builder).to_have_attribute("open", "")
    expect(params).not_to_have_attribute("open", "")  # one panel at a time
    page.get_by_text("Prompt builder").click()
    page.get_by_text("Model and parameters").click()
    page.evaluate("window.scrollTo(0, 0)")
    for selector in ("[data-prompt]", "[data-composer-submit]"):
        assert in_view(page, selector), f"{selector} left the screen with the parameters open"
    if viewport == WIDE:
        timeline = page.locator("[data-timeline]").bounding_box()
        assert timeline and timeline["height"] >= 0.3 * viewport["height"], "the conversation was squeezed"
    checked(page, f"the session with the parameters open, {theme}")
    # Sending from there works and the panel's choices go with it.
    page.locator("#param-count").fill("2")
    page.locator("[data-prompt]").fill("at dusk")
    page.locator("[data-composer-submit]").click()
    expect_step_done(page, 2, images=2)
    visit.assert_no_errors()
