"""Browser flows through the studio: prompt to image, iterate, branch, keyboard only, privacy, screenshots."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from imagestudio.generations.schemas import PromptOptions
from imagestudio.generations.spec import compose_prompt
from tests.web.live import DESKTOP, PHONE, LiveServer, Visit
from tests.web.studio import (
    expect_step_done,
    generations_by_step,
    horizontal_overflow,
    low_contrast_text,
    session_detail,
    start_session,
    submit_prompt,
    wait_for_generation,
)

pytestmark = pytest.mark.browser
SESSION_URL = re.compile(r"/sessions/[0-9a-f-]{36}$")


@pytest.fixture
def member(studio: LiveServer, visits: Callable[..., Visit]) -> Visit:
    visit = visits(studio)
    visit.log_in(studio.create_user())
    return visit


def test_prompt_to_image_then_iterate_and_branch_from_an_earlier_output(member: Visit) -> None:
    page = member.page
    member.goto("/")
    expect(page.locator("[data-sessions-empty]")).to_be_visible()
    model = page.get_by_label("Model")
    expect(model).to_be_enabled()
    expect(model.locator("option:checked")).to_have_text("Built-in renderer (not an AI model)")
    expect(page.locator("[data-model-note]")).to_contain_text("not an AI model")

    page.get_by_label("Describe the image you want to create").fill("A lighthouse on a cliff at sunset")
    page.get_by_role("button", name="Generate").click()
    expect(page).to_have_url(SESSION_URL)
    expect(page.locator("[data-session-title]")).to_have_text("A lighthouse on a cliff at sunset")
    expect_step_done(page, 1)
    expect(page.locator("[data-viewer-image]")).to_be_visible()
    meta = page.locator("[data-viewer-meta]")
    for fact in ("Step 1", "builtin-procedural", "Size", "Seed", "Text to image"):
        expect(meta).to_contain_text(fact)

    # By default the next turn iterates from the latest output.
    context = page.locator("[data-composer-context]")
    expect(context).to_contain_text("Iterating from step 1 (latest)")
    submit_prompt(page, "make the sky stormy")
    expect_step_done(page, 2)
    expect(page.locator("#announcer")).to_have_text("Step 2 finished with 1 image.")
    expect(context).to_contain_text("Iterating from step 2 (latest)")

    # Choosing step 1 in the history rail makes it the parent of the next turn: a branch.
    page.get_by_role("button", name=re.compile(r"^Step 1, ")).click()
    expect(context).to_contain_text("Iterating from step 1")
    expect(page.locator("[data-viewer-meta]")).to_contain_text("Step 1")
    submit_prompt(page, "add a sailing boat")
    expect_step_done(page, 3)

    steps = generations_by_step(session_detail(member, page.url.rsplit("/", 1)[1]))
    assert steps[1]["type"] == "text2img" and steps[1]["parent_generation_id"] is None
    assert steps[2]["type"] == "img2img" and steps[2]["parent_generation_id"] == steps[1]["id"]
    assert steps[3]["type"] == "img2img" and steps[3]["parent_generation_id"] == steps[1]["id"]

    page.get_by_role("tab", name="Branches").click()
    expect(page.locator(".lineage-summary")).to_have_text("2 branches")
    expect(page.locator(".lineage-children > .lineage-branch")).to_have_count(2)
    expect(page.get_by_role("button", name=re.compile(r"^Step \d, "))).to_have_count(3)

    member.goto("/")
    card = page.locator(".session-card").first
    expect(card).to_contain_text("A lighthouse on a cliff at sunset")
    expect(card).to_contain_text("3 images")
    member.assert_no_errors()


def test_keyboard_only_from_prompt_to_a_second_turn(member: Visit) -> None:
    page = member.page
    keyboard = page.keyboard
    member.goto("/")
    expect(page.locator("#start-prompt")).to_be_focused()
    keyboard.type("A red fox in the snow")
    keyboard.press("Control+Enter")
    expect(page).to_have_url(SESSION_URL)
    expect(page.locator("[data-prompt]")).to_be_focused()
    expect_step_done(page, 1)

    keyboard.type("the same fox at night")
    keyboard.press("Control+Enter")
    expect_step_done(page, 2)

    # Tab reaches the history rail; arrows move along it; Enter picks an output, with a visible focus ring.
    for _ in range(80):
        keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('rail-button')"):
            break
    else:
        pytest.fail("the history rail is not reachable with Tab")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"
    keyboard.press("Home")
    keyboard.press("Enter")
    expect(page.get_by_role("button", name=re.compile(r"^Step 1, "))).to_have_attribute("aria-pressed", "true")
    expect(page.locator("[data-composer-context]")).to_contain_text("Iterating from step 1")
    member.assert_no_errors()


PREVIEW_CASES = [
    ("a fox", {}),
    ("a fox in the snow.", {"shot_type": "close-up"}),
    ("", {"style": "oil painting", "weather": "foggy"}),
    ("a harbour ,;", {"camera_angle": "low angle", "location": "a city street", "lighting": "neon"}),
]


def test_the_builders_preview_is_the_prompt_the_server_composes(member: Visit) -> None:
    member.goto("/")
    for prompt, options in PREVIEW_CASES:
        composed = member.page.evaluate(
            "async ([prompt, options]) => (await import('/static/js/builder.js')).composePrompt(prompt, options)",
            [prompt, options],
        )
        assert composed == (compose_prompt(prompt, PromptOptions(**options)) or prompt.strip()), (prompt, options)


def test_the_prompt_builder_sends_its_choices(member: Visit) -> None:
    page = member.page
    session_id, first = start_session(member, "A quiet village", width=256, height=256)
    wait_for_generation(member, first["generation_id"])
    member.goto(f"/sessions/{session_id}")
    page.get_by_text("Prompt builder").click()
    page.get_by_label("Shot type").select_option(label="Wide shot")
    page.get_by_label("Style").select_option(label="Watercolor")
    expect(page.get_by_label("Location", exact=True)).to_be_hidden()
    page.get_by_label("Set the scene").check()
    page.get_by_label("Location", exact=True).fill("the mountains")
    page.get_by_label("Weather", exact=True).select_option(label="Snowy")
    preview = page.locator("[data-prompt-preview]")
    page.locator("[data-prompt]").fill("a quiet village at dusk")
    expected = "a quiet village at dusk, wide shot, watercolor style, set in the mountains, snowy weather"
    expect(preview).to_have_text(expected)
    page.locator("[data-prompt]").press("Control+Enter")
    expect_step_done(page, 2)
    step = generations_by_step(session_detail(member, session_id))[2]
    assert step["prompt"] == "a quiet village at dusk"
    assert step["enhanced_prompt"] == expected
    assert step["prompt_options"]["custom"] is True
    assert step["prompt_options"]["weather"] == "snowy"
    member.assert_no_errors()


def test_composer_parameters_reach_the_generation(member: Visit) -> None:
    page = member.page
    session_id, first = start_session(member, "A quiet pond", width=256, height=256)
    wait_for_generation(member, first["generation_id"])
    member.goto(f"/sessions/{session_id}")
    page.get_by_text("Model and parameters").click()
    page.get_by_label("New image").check()
    page.get_by_label("Images", exact=True).fill("2")
    page.get_by_label("Size", exact=True).select_option(label="Custom size…")
    page.get_by_label("Width", exact=True).fill("320")
    page.get_by_label("Height", exact=True).fill("192")
    page.get_by_label("Steps", exact=True).fill("12")
    page.get_by_label("Negative prompt").fill("blur")
    page.get_by_role("button", name="New seed").click()
    seed = page.get_by_label("Seed", exact=True).input_value()
    assert seed.isdigit()

    # Bad input is caught before anything is sent.
    page.get_by_label("Width", exact=True).fill("321")
    submit_prompt(page, "a koi pond at noon")
    expect(page.locator("[data-composer] [data-form-error]")).to_contain_text("multiples of 8")
    page.get_by_label("Width", exact=True).fill("320")
    page.locator("[data-prompt]").press("Control+Enter")
    expect_step_done(page, 2, images=2)

    step = generations_by_step(session_detail(member, session_id))[2]
    assert step["type"] == "text2img" and step["parent_generation_id"] is None
    assert (step["width"], step["height"], step["num_images"]) == (320, 192, 2)
    assert step["params"]["steps"] == 12 and step["params"]["seed"] == int(seed)
    assert step["negative_prompt"] == "blur"
    assert [asset["width"] for asset in step["outputs"]] == [320, 320]
    member.assert_no_errors()


def test_sessions_load_page_by_page(member: Visit) -> None:
    for number in range(14):
        member.api("POST", "/sessions", {"title": f"Study {number:02d}"})
    page = member.page
    member.goto("/")
    cards = page.locator(".session-card:not(.session-card-skeleton)")
    expect(cards).to_have_count(12)
    expect(cards.first).to_contain_text("Study 13")  # newest first
    page.locator("[data-load-sentinel]").scroll_into_view_if_needed()
    expect(cards).to_have_count(14)
    expect(page.locator("[data-load-more]")).to_be_hidden()
    page.get_by_label("Search sessions").fill("Study 07")
    expect(cards).to_have_count(1)
    page.get_by_label("Search sessions").fill("no such study")
    expect(page.get_by_text("No sessions match")).to_be_visible()
    member.assert_no_errors()


def test_a_second_user_cannot_see_the_first_users_session(
    studio: LiveServer, visits: Callable[..., Visit], member: Visit
) -> None:
    session_id, turn = start_session(member, "A private harbour sketch", width=256, height=256)
    wait_for_generation(member, turn["generation_id"])

    other = visits(studio)
    other.log_in(studio.create_user())
    other.goto(f"/sessions/{session_id}")
    expect(other.page.get_by_role("heading", name="This session is not here")).to_be_visible()
    expect(other.page.get_by_text("A private harbour sketch")).to_have_count(0)
    other.goto("/")
    expect(other.page.locator("[data-sessions-empty]")).to_be_visible()
    refused = other.context.request.get(f"{studio.base_url}/api/v1/sessions/{session_id}")
    assert refused.status == 404
    other.assert_no_errors(allow=("404",))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_screenshots_of_landing_and_session_fit_desktop_and_a_phone(
    studio: LiveServer, visits: Callable[..., Visit], theme: str
) -> None:
    email = studio.create_user()
    first = visits(studio, color_scheme=theme)
    first.log_in(email)
    session_id, turn = start_session(first, "Mountains above the clouds at dawn", num_images=2)
    wait_for_generation(first, turn["generation_id"])
    kind = "sqlite" if studio.settings.is_sqlite else "postgresql"
    for name, viewport in (("desktop", DESKTOP), ("390px", PHONE)):
        visit = visits(studio, viewport=viewport, color_scheme=theme)
        visit.log_in(email)
        page = visit.page
        visit.goto("/")
        expect(page.locator(".session-card")).to_have_count(1)
        expect(page.locator(".session-card img")).to_have_js_property("complete", True)
        assert horizontal_overflow(page) == 0
        assert low_contrast_text(page) == []
        visit.screenshot(f"landing-{theme}-{name}-{kind}")
        visit.goto(f"/sessions/{session_id}")
        expect_step_done(page, 1, images=2)
        # The batch of two is on the stage as a contact sheet.
        for image in page.locator(".contact-sheet-image img").all():
            expect(image).to_have_js_property("complete", True)
        assert horizontal_overflow(page) == 0
        assert low_contrast_text(page) == []
        visit.screenshot(f"session-{theme}-{name}-{kind}")
        if viewport is PHONE:
            visit.screenshot(f"session-{theme}-{name}-{kind}-full", full_page=True)
        visit.assert_no_errors()
