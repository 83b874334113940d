"""UI code in the studio, in a real browser: write a UI from a description and from an image,
iterate on it, view it at phone width, copy the code, compare versions; and the sandbox: a generated
document that tries to read the studio's cookies, local storage and API gets nothing.

The flow runs on the built-in composer; the sandbox test has a language model (the fake
OpenAI-compatible server, over a real socket) write the hostile document, as a model could.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Frame, Page, expect

from tests.conftest import DATABASES, PostgresServer
from tests.fakes.chat_openai import FakeChatCompletions
from tests.fakes.server import serve
from tests.web.conftest import migrated_studio_database
from tests.web.live import PHONE, LiveServer, Visit, running, studio_settings

pytestmark = pytest.mark.browser

PROBE = """```html
<!doctype html>
<html lang="en"><head><title>Probe</title></head>
<body><main><h1>Probe</h1><ul>
<li id="cookie">pending</li><li id="storage">pending</li><li id="parent">pending</li><li id="api">pending</li>
</ul></main>
<script>
const show = (id, text) => { document.getElementById(id).textContent = text; };
try { show("cookie", "cookie read: " + JSON.stringify(document.cookie)); }
catch (error) { show("cookie", "cookie blocked: " + error.name); }
try { show("storage", "storage read: " + JSON.stringify(window.localStorage.getItem("secret"))); }
catch (error) { show("storage", "storage blocked: " + error.name); }
try { show("parent", "parent read: " + JSON.stringify(window.parent.document.cookie)); }
catch (error) { show("parent", "parent blocked: " + error.name); }
fetch("/api/v1/me", { credentials: "include" })
  .then((response) => response.text().then((text) => show("api", "api read: " + response.status + " " + text)))
  .catch((error) => show("api", "api blocked: " + error.name));
</script></body></html>
```"""


@pytest.fixture(scope="module", params=DATABASES)
def builtin_studio(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[LiveServer]:
    url = migrated_studio_database(request.param, tmp_path_factory, postgres_server)
    with running(studio_settings(url, tmp_path_factory.mktemp("ui-studio-data"))) as server:
        yield server


@pytest.fixture(scope="module")
def chat_server() -> Iterator[tuple[FakeChatCompletions, str]]:
    fake = FakeChatCompletions(api_key=None)
    with serve(fake.app) as server:
        yield fake, f"{server.base_url}/v1"


@pytest.fixture(scope="module", params=DATABASES)
def model_studio(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    chat_server: tuple[FakeChatCompletions, str],
) -> Iterator[LiveServer]:
    url = migrated_studio_database(request.param, tmp_path_factory, postgres_server)
    settings = studio_settings(
        url, tmp_path_factory.mktemp("ui-model-data"), language_url=chat_server[1], language_model="llama3.2:1b"
    )
    with running(settings) as server:
        yield server


def _member(server: LiveServer, visits: Callable[..., Visit], **options: object) -> Visit:
    visit = visits(server, **options)
    visit.log_in(server.create_user())
    visit.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=visit.base_url)
    return visit


def _open_session(visit: Visit) -> str:
    session = visit.api("POST", "/sessions", {"title": "Interfaces"})
    visit.goto(f"/sessions/{session['id']}")
    return session["id"]


def _write_code(page: Page, text: str) -> None:
    page.get_by_label("UI code").check()
    page.locator("[data-prompt]").fill(text)
    page.get_by_role("button", name="Write code").click()


def _card(page: Page, version: int):
    return page.locator("[data-ui-generation-id]").nth(version - 1)


def _expect_done(page: Page, version: int) -> None:
    expect(page.locator("[data-ui-generation-id]")).to_have_count(version, timeout=60_000)
    expect(_card(page, version)).to_have_attribute("data-status", "succeeded", timeout=60_000)


def _frame(page: Page, ui: dict) -> Frame:
    """The preview's frame (its document runs in an opaque origin; the test reads it through the browser)."""
    expect(page.locator(f"#ui-{ui['id']} iframe.ui-frame")).to_be_attached()
    for _ in range(200):
        for frame in page.frames:
            try:
                if f"/ui-generations/{ui['id']}/preview" in frame.url and frame.locator("body").count():
                    return frame
            except PlaywrightError:  # replaced meanwhile (the card was drawn again): look again
                continue
        page.wait_for_timeout(50)
    raise AssertionError(f"no frame shows {ui['id']}")


def test_write_iterate_view_at_phone_width_copy_and_compare(
    builtin_studio: LiveServer, visits: Callable[..., Visit], tmp_path: Path
) -> None:
    visit = _member(builtin_studio, visits)
    page = visit.page
    session_id = _open_session(visit)

    _write_code(page, 'A login form for "Northwind"')
    _expect_done(page, 1)
    first = visit.api("GET", f"/sessions/{session_id}/ui-generations")["items"][0]
    expect(_card(page, 1)).to_contain_text("Built-in composer (not an AI model)")
    frame = _frame(page, first)
    expect(frame.get_by_role("heading", name="Sign in to Northwind")).to_be_visible()
    # Its own script runs inside the sandbox: the form answers without leaving the page. (At phone
    # width the preview is drawn unscaled, where the automation's clicks land where they aim.)
    _card(page, 1).get_by_role("button", name="Phone").click()
    frame = _frame(page, first)
    frame.get_by_role("button", name="Sign in").click()
    expect(frame.get_by_role("status")).to_have_text("Please check email.")

    # Iterate: the same form, dark and with larger buttons.
    _write_code(page, "dark theme and larger buttons")
    _expect_done(page, 2)
    second = visit.api("GET", f"/sessions/{session_id}/ui-generations")["items"][0]
    assert second["parent_id"] == first["id"]
    expect(_card(page, 2)).to_contain_text("Revises UI v1")
    frame = _frame(page, second)
    expect(frame.get_by_role("heading", name="Sign in to Northwind")).to_be_visible()
    assert frame.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(15, 23, 42)"
    assert frame.evaluate("getComputedStyle(document.querySelector('.button')).fontSize") == "18px"

    # Phone width: the document is laid out at 390 CSS pixels and nothing spills sideways.
    _card(page, 2).get_by_role("button", name="Phone").click()
    expect(_card(page, 2).get_by_role("button", name="Phone")).to_have_attribute("aria-pressed", "true")
    frame = _frame(page, second)
    assert frame.evaluate("window.innerWidth") == PHONE["width"]
    assert frame.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _card(page, 2).locator("iframe.ui-frame").scroll_into_view_if_needed()
    visit.screenshot("ui-code-phone")

    # The code: highlighted in the page, copied exactly, downloadable.
    code = visit.api("GET", f"/ui-generations/{second['id']}")["code"]
    _card(page, 2).get_by_role("button", name="Show code").click()
    shown = _card(page, 2).locator("pre.ui-code")
    expect(shown).to_be_visible()
    assert shown.inner_text() == code
    assert shown.locator(".tok-tag").count() > 10 and shown.locator(".tok-property").count() > 10
    _card(page, 2).get_by_role("button", name="Copy code").click()
    expect(_card(page, 2).get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == code
    with page.expect_download() as download:
        _card(page, 2).get_by_role("link", name="Download").click()
    saved = tmp_path / "saved.html"
    download.value.save_as(saved)
    assert saved.read_text() == code and download.value.suggested_filename.endswith(".html")

    # From an image: a picture in the composer starts a new line, in the picture's colours.
    picture = tmp_path / "mockup.png"
    Image.new("RGB", (160, 100), (220, 40, 60)).save(picture)
    page.get_by_label("UI code").check()
    page.locator("[data-file-input]").set_input_files(str(picture))
    context = page.locator("[data-composer-context]")
    expect(context).to_contain_text("a new interface from your image")
    expect(context).to_contain_text("Starting from your image")  # uploaded
    page.locator("[data-prompt]").fill("a landing page for a bakery")
    page.get_by_role("button", name="Write code").click()
    _expect_done(page, 3)
    third = visit.api("GET", f"/sessions/{session_id}/ui-generations")["items"][0]
    assert third["source_asset_id"] is not None and third["parent_id"] is None
    expect(_card(page, 3)).to_contain_text("From an image")
    accent = re.search(r"--accent: (#[0-9a-f]{6})", visit.api("GET", f"/ui-generations/{third['id']}")["code"])
    red, green, blue = (int(accent.group(1)[i : i + 2], 16) for i in (1, 3, 5))
    assert red > 180 and green < 90 and blue < 100, accent.group(1)
    expect(_frame(page, third).get_by_role("heading", name="Bakery, made simple")).to_be_visible()

    # Two versions side by side.
    _card(page, 2).get_by_role("button", name="Compare").click()
    dialog = page.get_by_role("dialog", name="Compare versions")
    expect(dialog.locator("iframe.ui-frame")).to_have_count(2)
    expect(dialog.locator("figcaption").first).to_contain_text("UI v1")
    expect(dialog.locator("figcaption").nth(1)).to_contain_text("UI v2")
    visit.screenshot("ui-code-compare")
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_have_count(0)
    visit.assert_no_errors()


def test_a_generated_document_cannot_read_the_studios_cookies_storage_or_api(
    model_studio: LiveServer, visits: Callable[..., Visit], chat_server: tuple[FakeChatCompletions, str]
) -> None:
    fake, _ = chat_server
    visit = _member(model_studio, visits)
    page = visit.page
    _open_session(visit)
    frame_requests: list[str] = []
    page.on("request", lambda request: frame_requests.append(request.url) if request.frame != page.main_frame else None)
    # Secrets the studio's own origin can read: a script-visible cookie and a local storage entry.
    page.evaluate("document.cookie = 'probe=visible-secret; path=/'; localStorage.setItem('secret', 'stored-secret')")
    assert "visible-secret" in page.evaluate("document.cookie")

    fake.reply_next(PROBE)
    _write_code(page, "a probe")
    _expect_done(page, 1)
    ui = visit.api(
        "GET", f"/ui-generations/{page.locator('[data-ui-generation-id]').get_attribute('data-ui-generation-id')}"
    )
    frame = _frame(page, ui)
    expect(frame.locator("#cookie")).to_have_text("cookie blocked: SecurityError")
    expect(frame.locator("#storage")).to_have_text("storage blocked: SecurityError")
    expect(frame.locator("#parent")).to_have_text("parent blocked: SecurityError")
    expect(frame.locator("#api")).to_have_text("api blocked: TypeError")
    assert not [url for url in frame_requests if "/api/v1/me" in url], frame_requests
    assert frame.evaluate("window.origin") == "null"
    # The frame itself came from a signed link, with the sandbox on the element too.
    iframe = page.locator("iframe.ui-frame")
    assert iframe.get_attribute("sandbox") == "allow-scripts"
    assert re.search(r"/preview\?expires=\d+&signature=[\w-]+$", iframe.get_attribute("src"))
    # The only errors are the browser refusing the document's fetch.
    blocked = [error for error in visit.errors if "/api/v1/me" in error]
    assert blocked and all("Content Security Policy" in error for error in blocked), visit.errors
    visit.assert_no_errors(allow=("/api/v1/me",))
