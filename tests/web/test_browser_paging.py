"""A session longer than its first page: it opens with the newest steps, loads older ones as the person
scrolls up to them, and a step picked in the branches view is loaded and shown."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from imagestudio.sessions.detail import DEFAULT_STEPS
from tests.web.live import LiveServer, Visit
from tests.web.studio import expect_step_done, session_detail, wait_for_generation

pytestmark = pytest.mark.browser
STEPS = DEFAULT_STEPS + 6
SMALL = {"width": 64, "height": 64, "params": {"steps": 2}}


@pytest.fixture
def long_session(studio: LiveServer, visits: Callable[..., Visit]) -> tuple[Visit, str, dict]:
    visit = visits(studio)
    visit.log_in(studio.create_user())
    session_id = visit.api("POST", "/sessions", {})["id"]
    turns = [
        visit.api("POST", f"/sessions/{session_id}/messages", {"content": f"lighthouse {n}", "mode": "fresh", **SMALL})
        for n in range(1, STEPS + 1)
    ]
    for made in turns:
        wait_for_generation(visit, made["generation_id"])
    return visit, session_id, session_detail(visit, session_id)


def first_step(page, detail: dict):
    """Step 1's turn in the timeline (by its generation: "Step 1" is also the start of "Step 12")."""
    [node] = [node for node in detail["lineage"] if node["step"] == 1]
    return page.locator(f'.turn-assistant[data-generation-id="{node["generation_id"]}"]')


def test_scrolling_up_loads_the_older_steps(long_session: tuple[Visit, str, dict]) -> None:
    visit, session_id, detail = long_session
    assert detail["steps_cursor"] and len(detail["generations"]) == DEFAULT_STEPS
    page = visit.page
    # The stream starts after the detail's newest event: the steps' history is not sent again.
    with page.expect_request(lambda request: f"/api/v1/sessions/{session_id}/events" in request.url) as opened:
        visit.goto(f"/sessions/{session_id}")
    assert detail["last_event_id"] > 0
    assert parse_qs(urlsplit(opened.value.url).query) == {"after": [str(detail["last_event_id"])]}
    expect_step_done(page, STEPS)
    expect(page.locator(".turn-assistant")).to_have_count(DEFAULT_STEPS)
    expect(first_step(page, detail)).to_have_count(0)
    more = page.locator("[data-timeline-more]")
    expect(more).to_be_attached()

    # The person scrolls the timeline up to its top: the older steps come in above, all of them.
    timeline = page.locator("[data-timeline]")
    timeline.hover()
    for _ in range(20):
        if first_step(page, detail).count():
            break
        page.mouse.wheel(0, -5000)
        page.wait_for_timeout(200)
    expect(first_step(page, detail)).to_have_attribute("data-status", "succeeded")
    expect(page.locator(".turn-assistant")).to_have_count(STEPS)
    expect(more).to_have_count(0)
    expect(page.locator(".turn-user").first).to_contain_text("lighthouse 1")
    visit.assert_no_errors()


def test_a_step_picked_in_the_branches_view_is_loaded_and_shown(long_session: tuple[Visit, str, dict]) -> None:
    visit, session_id, detail = long_session
    page = visit.page
    visit.goto(f"/sessions/{session_id}")
    expect_step_done(page, STEPS)
    page.get_by_role("tab", name="Branches").click()
    nodes = page.locator(".lineage-node")
    expect(nodes).to_have_count(STEPS)  # every step, loaded or not
    [node] = [node for node in detail["lineage"] if node["step"] == 1]
    first = page.locator(f'.lineage-node[data-generation-id="{node["generation_id"]}"]')
    expect(first.locator("img")).to_have_count(1)  # its image, from the lineage alone
    expect(first_step(page, detail)).to_have_count(0)
    first.click()
    expect(page.locator("[data-viewer-meta]")).to_contain_text("Step 1")
    expect(first_step(page, detail)).to_have_count(1)
    expect(page.locator("[data-composer-context]")).to_contain_text("Iterating from step 1")
    visit.assert_no_errors()
