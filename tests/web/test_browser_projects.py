"""Browser flow of the projects workspace: make a project, give it defaults, generate in it, move a
session into it, publish it, open the link in a fresh browser without cookies (its images and its UI
preview in a sandboxed frame), and revoke it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.web.live import LiveServer, Visit
from tests.web.studio import expect_step_done, session_detail

pytestmark = pytest.mark.browser
SESSION_URL = re.compile(r"/sessions/[0-9a-f-]{36}$")
PROJECT_URL = re.compile(r"/projects/[0-9a-f-]{36}$")


def test_a_project_is_made_used_published_and_unpublished(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    owner = visits(studio)
    email = studio.create_user()
    owner.log_in(email)
    page = owner.page

    owner.goto("/projects")
    page.get_by_label("Name").fill("Harbour posters")
    page.get_by_label("Description").fill("Prints for the harbour festival")
    page.get_by_role("button", name="Create project").click()
    expect(page).to_have_url(PROJECT_URL)
    page.locator("body[data-ready]").wait_for(state="attached")
    expect(page.locator("[data-project-name]")).to_have_text("Harbour posters")
    project_id = page.url.rsplit("/", 1)[1]

    # Defaults for the project's sessions, then a first session made in it.
    page.get_by_label("Model").select_option(label="Plain colour (not an AI model)")
    page.get_by_label("Style").fill("watercolour")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.locator(".toast").get_by_text("Defaults saved.")).to_be_visible()
    page.get_by_label("Describe the image you want to create").fill("A red kite over dunes")
    page.get_by_role("button", name="Generate").click()
    expect(page).to_have_url(SESSION_URL)
    expect_step_done(page, 1)
    detail = session_detail(owner, page.url.rsplit("/", 1)[1])
    assert detail["project_id"] == project_id
    assert detail["generations"][0]["prompt_options"]["style"] == "watercolour"
    assert detail["generations"][0]["model"] == "solid"
    # The session's composer starts from the project's model too.
    expect(page.locator("#param-model")).to_have_value("solid")
    # A UI turn in the same session, through the API the page uses.
    ui_id = owner.api("POST", f"/sessions/{detail['id']}/messages", {"content": "A signup card", "mode": "ui"})[
        "ui_generation_id"
    ]

    # A session made elsewhere moves into the project from the sessions page, under its heading.
    loose = owner.api("POST", "/sessions", {"title": "Loose sketch"})
    owner.goto("/")
    page.get_by_label("Project of “Loose sketch”").select_option(label="Harbour posters")
    group = page.locator(f'[data-group-id="{project_id}"]')
    expect(group.locator(".session-card")).to_have_count(2)
    expect(group).to_contain_text("Loose sketch")
    assert owner.api("GET", f"/sessions/{loose['id']}")["project_id"] == project_id
    owner.assert_no_errors()
    owner.goto("/projects")
    expect(page.locator(".project-item")).to_contain_text(["Harbour posters"])
    owner.assert_no_errors()

    _wait_for_ui(owner, ui_id)
    # The project page shows its sessions and images; sharing gives a link, shown once.
    owner.goto(f"/projects/{project_id}")
    expect(page.locator("[data-session-grid] .session-card")).to_have_count(2)
    expect(page.locator("[data-project-images] img")).to_have_count(1)
    page.get_by_role("button", name="Share at a link").click()
    link = page.locator("[data-public-link]")
    expect(link).to_have_value(re.compile(r"/p/[A-Za-z0-9_-]{43}$"))
    public_path = "/p/" + link.input_value().rsplit("/p/", 1)[1]
    owner.assert_no_errors()

    # A fresh browser, with no cookies, reads the project and nothing of the owner's account.
    visitor = visits(studio)
    visitor.goto(public_path)
    view = visitor.page
    expect(view.get_by_role("heading", name="Harbour posters")).to_be_visible()
    expect(view.locator("[data-public-prompt]")).to_have_text(["A red kite over dunes", "A signup card"])
    expect(view.locator(".public-image")).to_have_js_property("complete", True)
    assert view.locator(".public-image").evaluate("image => image.naturalWidth") > 0
    assert email not in view.content() and "Loose sketch" in view.content()
    # The UI generation runs in a sandboxed frame: scripts yes, the studio's origin never.
    frame_element = view.locator("iframe.public-ui-frame")
    assert frame_element.get_attribute("sandbox") == "allow-scripts"
    frame_element.scroll_into_view_if_needed()  # the frame loads lazily
    frame = frame_element.element_handle().content_frame()
    assert frame is not None
    expect(frame.locator("body")).not_to_be_empty()
    assert frame.evaluate("window.origin") == "null"
    visitor.assert_no_errors()

    # Stopping sharing ends the link at once.
    page.get_by_role("button", name="Stop sharing").click()
    page.locator("[data-confirm-ok]").click()
    expect(page.get_by_role("button", name="Share at a link")).to_be_visible()
    visitor.page.reload()
    expect(view.get_by_role("heading", name="This link does not open anything")).to_be_visible()
    expect(view.get_by_text("A red kite over dunes")).to_have_count(0)
    expect(view.locator("iframe")).to_have_count(0)
    owner.assert_no_errors()


def _wait_for_ui(visit: Visit, ui_id: str) -> None:
    """Until the worker has written the UI generation's code (bounded overall, not per step)."""
    for _ in range(600):
        if visit.api("GET", f"/ui-generations/{ui_id}")["status"] == "succeeded":
            return
        visit.page.wait_for_timeout(100)
    raise AssertionError(f"UI generation {ui_id} did not finish")
