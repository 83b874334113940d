"""Browser flows that change images or running work: inpaint with a painted mask, upscale and variation,
uploads, cancel, reload during a generation, and managing the session itself."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.web.live import LiveServer, Visit
from tests.web.studio import (
    SLOW_TURN,
    expect_step_done,
    generations_by_step,
    session_detail,
    start_session,
    submit_prompt,
    turn,
    wait_for_generation,
)

pytestmark = pytest.mark.browser
TIMES = "\u00d7"  # the multiplication sign the page writes in sizes and factors
RUNNING = re.compile(r"step \d+ of \d+")


@pytest.fixture
def member(studio: LiveServer, visits: Callable[..., Visit]) -> Visit:
    visit = visits(studio)
    visit.log_in(studio.create_user())
    return visit


def open_finished_session(visit: Visit, prompt: str, **overrides) -> str:
    session_id, first = start_session(visit, prompt, **overrides)
    wait_for_generation(visit, first["generation_id"])
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(visit.page, 1, images=overrides.get("num_images", 1))
    return session_id


def test_paint_a_mask_and_inpaint(member: Visit) -> None:
    page = member.page
    session_id = open_finished_session(member, "A calm blue lake", width=512, height=384)
    page.get_by_role("button", name="Paint mask").click()
    canvas = page.locator("[data-mask-canvas]")
    expect(canvas).to_be_visible()
    expect(page.get_by_role("toolbar", name="Mask painting")).to_be_visible()
    box = canvas.bounding_box()
    assert box is not None

    def at(x: float, y: float) -> tuple[float, float]:
        return box["x"] + box["width"] * x, box["y"] + box["height"] * y

    # Invert paints everything, Clear takes it all away, and an empty mask is not accepted.
    page.get_by_role("button", name="Invert").click()
    page.get_by_role("button", name="Clear").click()
    page.get_by_role("button", name="Use mask").click()
    expect(page.locator(".toast-error")).to_contain_text("Paint over the part of the image to change first.")

    # A thick stroke across the top left, then the eraser takes a bite out of its end.
    page.get_by_label("Brush size").fill("60")
    page.mouse.move(*at(0.1, 0.15))
    page.mouse.down()
    page.mouse.move(*at(0.45, 0.15), steps=10)
    page.mouse.up()
    page.get_by_role("button", name="Eraser").click()
    page.mouse.move(*at(0.45, 0.15))
    page.mouse.down()
    page.mouse.up()
    page.get_by_role("button", name="Use mask").click()

    context = page.locator("[data-composer-context]")
    expect(context).to_contain_text("Inpaint step 1")
    expect(page.locator("[data-composer-submit]")).to_have_text("Inpaint")
    submit_prompt(page, "a golden sun rising")
    expect_step_done(page, 2)

    step = generations_by_step(session_detail(member, session_id))[2]
    assert step["type"] == "inpaint"
    mask_input = next(item for item in step["inputs"] if item["role"] == "mask")
    content = member.context.request.get(f"{member.base_url}/api/v1/assets/{mask_input['asset_id']}/content")
    assert content.ok
    mask = Image.open(io.BytesIO(content.body())).convert("L")
    assert mask.size == (512, 384)
    assert {value for value, count in enumerate(mask.histogram()) if count} <= {0, 255}
    assert mask.getpixel((int(512 * 0.25), int(384 * 0.15))) == 255  # painted: repaint
    assert mask.getpixel((int(512 * 0.45), int(384 * 0.15))) == 0  # erased
    assert mask.getpixel((int(512 * 0.8), int(384 * 0.8))) == 0  # never painted: keep
    member.assert_no_errors()


def test_upscale_variation_and_download(member: Visit) -> None:
    page = member.page
    session_id = open_finished_session(member, "A small pixel robot", width=256, height=256)
    page.get_by_role("button", name=f"Upscale {TIMES}2").click()
    expect_step_done(page, 2)
    expect(page.locator("[data-viewer-meta]")).to_contain_text(f"512{TIMES}512")
    page.get_by_role("button", name="Variation").click()
    expect_step_done(page, 3)

    steps = generations_by_step(session_detail(member, session_id))
    assert steps[2]["type"] == "upscale" and steps[2]["parent_generation_id"] == steps[1]["id"]
    assert steps[2]["outputs"][0]["width"] == 512
    assert steps[3]["type"] == "variation" and steps[3]["parent_generation_id"] == steps[2]["id"]

    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    saved = Path(download.value.path()).read_bytes()
    shown = steps[3]["outputs"][0]
    # The name says what the image is: the session, the step (and the image of a batch), not an id.
    assert download.value.suggested_filename == "a-small-pixel-robot-step-3.png"
    assert saved == member.context.request.get(member.base_url + shown["content_url"]).body()
    assert Image.open(io.BytesIO(saved)).size == (shown["width"], shown["height"])
    member.assert_no_errors()


def test_a_failed_turn_shows_why_and_only_what_can_succeed(member: Visit) -> None:
    page = member.page
    session_id = open_finished_session(member, "A wide desert", width=1152, height=1152)
    # An upscale past the renderer's 2048 pixels a side is not offered...
    expect(page.get_by_role("button", name=f"Upscale {TIMES}4")).to_have_count(0)
    expect(page.get_by_role("button", name=f"Upscale {TIMES}2")).to_have_count(0)
    # ...and one asked for anyway (as a program may) fails for good: said plainly, the provider's words and
    # the code second, with no Retry, since it would fail the same way.
    source = session_detail(member, session_id)["generations"][0]["outputs"][0]["id"]
    member.api(
        "POST",
        f"/sessions/{session_id}/messages",
        {"content": "", "mode": "upscale", "source_asset_id": source, "params": {"upscale_factor": 2}},
    )
    failed = turn(page, 2)
    expect(failed).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(failed.locator(".turn-reason")).to_contain_text("trying again will not change that")
    expect(failed.locator(".turn-code")).to_contain_text("over the 2048 pixel limit")
    expect(failed.locator(".turn-code")).to_contain_text("Code: provider_failed")
    expect(failed.get_by_role("button", name="Retry")).to_have_count(0)
    expect(page.locator(".turn-user").last).to_contain_text("Upscaled from step 1")
    expect(page.locator("#announcer")).to_contain_text("Step 2 failed")

    failed.get_by_role("button", name="Delete step").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete step").click()
    expect(page.locator(".turn-assistant")).to_have_count(1)
    expect(page.locator(".turn-assistant").first).to_have_attribute("data-status", "succeeded")
    member.assert_no_errors()


def test_a_retry_replaces_the_stopped_step_in_place(member: Visit) -> None:
    page = member.page
    session_id = open_finished_session(member, "A red kite", width=128, height=128)
    _, slow = start_session(member, "unused", **SLOW_TURN)  # keeps the worker busy, in another session
    member.api(
        "POST",
        f"/sessions/{session_id}/messages",
        {"content": "at night", "mode": "fresh", "width": 128, "height": 128},
    )
    member.api(
        "POST", f"/sessions/{session_id}/messages", {"content": "in fog", "mode": "fresh", "width": 128, "height": 128}
    )
    stopped = turn(page, 2)
    expect(stopped).to_have_attribute("data-status", "queued", timeout=30_000)
    stopped.get_by_role("button", name="Cancel").click()
    expect(stopped).to_have_attribute("data-status", "canceled")
    member.api("POST", f"/generations/{slow['generation_id']}/cancel", {})

    stopped.get_by_role("button", name="Retry").click()
    expect(page.locator(".turn-assistant")).to_have_count(3)
    expect_step_done(page, 2)
    expect_step_done(page, 3)
    assert page.locator(".turn-assistant").nth(1).locator(".turn-step").inner_text().startswith("Step 2")
    detail = session_detail(member, session_id)
    steps = generations_by_step(detail)
    assert [steps[number]["prompt"] for number in (1, 2, 3)] == ["A red kite", "at night", "in fog"]
    assert all(generation["status"] == "succeeded" for generation in detail["generations"])
    member.assert_no_errors()


# A PNG made in the page, handed over the way a paste or a drop hands files to it.
_HAND_OVER = """
async ([kind, colour]) => {
  const canvas = document.createElement("canvas");
  canvas.width = 200;
  canvas.height = 150;
  const context = canvas.getContext("2d");
  context.fillStyle = colour;
  context.fillRect(0, 0, 200, 150);
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const transfer = new DataTransfer();
  transfer.items.add(new File([blob], `${kind}.png`, { type: "image/png" }));
  if (kind === "paste") {
    document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
  } else {
    const zone = document.querySelector(".session-layout");
    for (const type of ["dragenter", "dragover", "drop"]) {
      zone.dispatchEvent(new DragEvent(type, { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }
  }
}
"""


def test_start_from_an_uploaded_image(member: Visit, tmp_path: Path) -> None:
    page = member.page
    session_id = open_finished_session(member, "A meadow", width=256, height=256)
    picture = tmp_path / "sketch.png"
    Image.new("RGB", (320, 240), (200, 40, 40)).save(picture)
    page.locator("[data-file-input]").set_input_files(str(picture))
    context = page.locator("[data-composer-context]")
    expect(context).to_contain_text("Starting from your image")
    submit_prompt(page, "turn the sketch into a poppy field")
    expect_step_done(page, 2)
    expect(turn(page, 2)).to_contain_text("From your image")
    expect(page.locator(".turn-user").last.locator(".turn-attachment")).to_have_count(1)
    step = generations_by_step(session_detail(member, session_id))[2]
    assert step["type"] == "img2img"
    init = next(item for item in step["inputs"] if item["role"] == "init")
    uploaded = member.api("GET", f"/assets/{init['asset_id']}")
    assert (uploaded["kind"], uploaded["width"], uploaded["height"]) == ("upload", 320, 240)

    # A pasted image starts the next turn; a dropped one joins it as a reference.
    page.evaluate(_HAND_OVER, ["paste", "#2060c0"])
    expect(context.locator(".chip", has_text="Starting from your image")).to_have_count(1)
    page.evaluate(_HAND_OVER, ["drop", "#20c060"])
    expect(context.locator(".chip", has_text="Reference image")).to_have_count(1)
    submit_prompt(page, "a lake in the same colours")
    expect_step_done(page, 3)
    expect(page.locator(".turn-user").last.locator(".turn-attachment")).to_have_count(2)
    roles = sorted(item["role"] for item in generations_by_step(session_detail(member, session_id))[3]["inputs"])
    assert roles == ["init", "reference"]
    expect(context.locator(".chip")).to_have_count(1)  # the uploads are used up; iterating from step 3 again
    member.assert_no_errors()


def test_cancel_a_running_turn_then_delete_the_step(member: Visit) -> None:
    page = member.page
    session_id, first = start_session(member, "A sprawling detailed city", **SLOW_TURN)
    member.goto(f"/sessions/{session_id}")
    running = turn(page, 1)
    expect(running.locator("[data-progress-text]")).to_contain_text(RUNNING, timeout=30_000)
    running.get_by_role("button", name="Cancel").click()
    expect(running).to_have_attribute("data-status", "canceled", timeout=30_000)
    expect(running).to_contain_text("This step was canceled.")
    expect(page.locator("#announcer")).to_contain_text("Step 1 was canceled.")
    generation = member.api("GET", f"/generations/{first['generation_id']}")
    assert generation["status"] == "canceled" and generation["outputs"] == []

    running.get_by_role("button", name="Delete step").click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete step").click()
    expect(page.locator(".turn-assistant")).to_have_count(0)
    member.assert_no_errors()


def test_reload_and_another_tab_see_a_running_turn_finish(
    studio: LiveServer, visits: Callable[..., Visit], member: Visit
) -> None:
    page = member.page
    session_id, _ = start_session(member, "A busy harbour at dusk", **{**SLOW_TURN, "num_images": 4})
    member.goto(f"/sessions/{session_id}")
    expect(turn(page, 1).locator("[data-progress-text]")).to_contain_text(RUNNING, timeout=30_000)

    page.reload()
    expect(turn(page, 1)).to_have_attribute("data-status", re.compile(r"queued|processing"))
    expect(turn(page, 1).get_by_role("button", name="Cancel")).to_be_visible()

    # Same account, another tab (its own connection to the event stream).
    second = member.context.new_page()
    second.goto(f"{studio.base_url}/sessions/{session_id}")
    expect_step_done(page, 1, images=4, timeout=120_000)
    expect_step_done(second, 1, images=4, timeout=30_000)
    # The finished batch is on the stage as a contact sheet, in both tabs.
    for tab in (page, second):
        expect(tab.get_by_role("group", name=re.compile(r"^Step 1: 4 images"))).to_be_visible()
    member.assert_no_errors()


def test_rename_archive_and_delete_the_session(member: Visit) -> None:
    page = member.page
    session_id = open_finished_session(member, "An untitled study", width=256, height=256)
    page.get_by_role("button", name="Rename").click()
    title = page.get_by_label("Session title")
    expect(title).to_be_focused()
    title.fill("Harbour study")
    title.press("Enter")
    expect(page.locator("[data-session-title]")).to_have_text("Harbour study")
    assert member.api("GET", f"/sessions/{session_id}")["title"] == "Harbour study"

    page.get_by_role("button", name="Archive").click()
    expect(page.locator("[data-archived-badge]")).to_be_visible()
    expect(page.get_by_role("button", name="Restore")).to_be_visible()
    assert member.api("GET", f"/sessions/{session_id}")["archived"] is True
    member.goto("/")
    page.get_by_label("Archived").check()
    expect(page.locator(".session-card", has_text="Harbour study")).to_be_visible()

    member.goto(f"/sessions/{session_id}")
    page.get_by_role("button", name="Delete", exact=True).click()
    page.locator("#confirm-dialog").get_by_role("button", name="Delete session").click()
    expect(page).to_have_url(member.base_url + "/")
    gone = member.context.request.get(f"{member.base_url}/api/v1/sessions/{session_id}")
    assert gone.status == 404
    member.assert_no_errors()
