"""/api/docs works offline: its page, Swagger UI's script and styles all come from the studio itself."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Route, expect

from tests.web.htmlcheck import read_page
from tests.web.live import LiveServer, Visit


def test_the_docs_page_names_only_files_of_the_studio(anonymous: TestClient) -> None:
    page = anonymous.get("/api/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    facts = read_page(page.text)
    assert facts.inline_problems == []
    addresses = [script.get("src") for script in facts.scripts] + facts.stylesheets
    assert addresses and all(address.startswith("/") and not address.startswith("//") for address in addresses)
    assert not re.search(r"https?://", page.text)
    for address in addresses:
        served = anonymous.get(address)
        assert served.status_code == 200, address
        assert served.headers["content-type"].split(";")[0] in ("text/javascript", "text/css"), address
    assert anonymous.get("/api/docs/assets/no-such-file.js").status_code == 404
    assert anonymous.get("/api/docs/oauth2-redirect").status_code == 200


@pytest.mark.browser
def test_the_docs_render_with_no_network_beyond_the_studio(studio: LiveServer, visits: Callable[..., Visit]) -> None:
    visit = visits(studio)
    leaving: list[str] = []

    def offline(route: Route) -> None:
        if route.request.url.startswith(visit.base_url):
            route.continue_()
        else:
            leaving.append(route.request.url)
            route.abort()

    visit.context.route("**/*", offline)
    visit.page.goto(visit.base_url + "/api/docs")
    # Swagger UI parses the whole OpenAPI document before it draws anything: seconds on a busy machine.
    expect(visit.page.locator(".swagger-ui .info .title")).to_contain_text("imagestudio", timeout=30_000)
    expect(visit.page.locator(".opblock-tag-section").first).to_be_visible()
    assert leaving == []
    # Script errors only: axe findings on this page are Swagger UI's own markup (nested controls, heading order).
    assert visit.errors == []
