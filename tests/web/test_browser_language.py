"""Browser flows with a language model: describe an output, use the description as the next prompt,
generate with enhancement on and edit the prompt the model wrote; describe an upload; ask a question
whose answer streams into the page and send the prompt it suggests.

The studio talks to a fake OpenAI-compatible server (as it would to Ollama) over a real socket.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.conftest import DATABASES, PostgresServer, make_migrated_database
from tests.fakes.chat_openai import FakeChatCompletions
from tests.fakes.common import Fault
from tests.fakes.server import serve
from tests.web.live import LiveServer, Visit, running, studio_settings
from tests.web.studio import expect_step_done, submit_prompt, turn

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def chat_server() -> Iterator[tuple[FakeChatCompletions, str]]:
    fake = FakeChatCompletions(api_key=None)  # a local server: no key
    with serve(fake.app) as server:
        yield fake, f"{server.base_url}/v1"


@pytest.fixture(scope="module", params=DATABASES)
def language_studio(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    chat_server: tuple[FakeChatCompletions, str],
) -> Iterator[LiveServer]:
    url = make_migrated_database(request.param, tmp_path_factory.mktemp("language-studio"), postgres_server)
    settings = studio_settings(
        url,
        tmp_path_factory.mktemp("language-studio-data"),
        language_url=chat_server[1],
        language_model="llama3.2:1b",
        vision_model="llava:7b",
    )
    with running(settings) as server:
        yield server


@pytest.fixture
def member(language_studio: LiveServer, visits: Callable[..., Visit]) -> Visit:
    visit = visits(language_studio)
    visit.log_in(language_studio.create_user())
    return visit


def test_describe_use_as_prompt_and_generate_with_enhancement(
    member: Visit, chat_server: tuple[FakeChatCompletions, str]
) -> None:
    fake, _ = chat_server
    page = member.page
    member.goto("/")
    page.get_by_label("Describe the image you want to create").fill("A lighthouse on a cliff at sunset")
    page.get_by_role("button", name="Generate").click()
    expect(page).to_have_url(re.compile(r"/sessions/[0-9a-f-]{36}$"))
    expect_step_done(page, 1)

    page.get_by_role("button", name="Describe").click()
    caption = page.locator("[data-caption-text]")
    # The fake names the size of the picture it was sent: the output itself reached the model.
    expect(caption).to_have_text(re.compile(r"^A picture of \d+x\d+ pixels, mostly #[0-9a-f]{6}\.$"), timeout=30_000)
    expect(page.locator("[data-viewer-caption]")).to_contain_text("By llava:7b")
    assert fake.last.json["model"] == "llava:7b"
    description = caption.inner_text()

    page.get_by_role("button", name="Use as prompt").click()
    prompt = page.locator("[data-prompt]")
    expect(prompt).to_have_value(description)
    expect(prompt).to_be_focused()
    # With enhancement on, the language model writes the prompt the image is made from.
    enhance = page.get_by_label("Enhance prompt")
    expect(enhance).not_to_be_checked()
    enhance.check()
    submit_prompt(page, description)
    expect_step_done(page, 2)
    expect(page.locator("[data-viewer-meta]")).to_contain_text("Step 2")
    sent = turn(page, 2).locator("[data-sent-prompt='language_model']")
    expect(sent).to_contain_text("Sent prompt (written by llama3.2:1b)")
    sent.locator("summary").click()
    written = sent.locator("[data-sent-prompt-text]").inner_text()
    assert written.startswith("An answer about") and fake.last.json["model"] == "llama3.2:1b"
    sent.get_by_role("button", name="Edit as the next prompt").click()
    expect(page.locator("[data-prompt]")).to_have_value(written)
    # Another image is selected: its description is not the one shown.
    expect(page.locator("[data-viewer-caption]")).to_be_hidden()

    # The settings page shows what that cost: two images from the renderer, tokens from the model.
    member.goto("/settings")
    expect(page.locator("[data-usage-quota]")).to_contain_text("2 images today (no daily limit)")
    usage = page.locator("[data-usage-body]")
    expect(usage.locator("tr")).to_have_count(2)
    expect(usage.locator("tr", has_text="builtin").locator("td").first).to_have_text("2")
    expect(usage.locator("tr", has_text="openai").locator("td").nth(2)).not_to_have_text("0")

    # Enhancement can be everyone's default: the composer then starts with it on.
    page.locator("[data-default-enhance]").check()
    page.get_by_role("button", name="Save defaults").click()
    expect(page.get_by_text("Defaults saved.")).to_be_visible()
    assert member.api("GET", "/me/settings")["enhance_prompt"] is True
    page.go_back()
    page.reload()
    expect(page.get_by_label("Enhance prompt", exact=True)).to_be_checked()
    member.assert_no_errors()


ANSWER = "Lower the sun and add long shadows.\n\n```prompt\na lighthouse at dusk, low sun, long shadows\n```"


def test_describe_an_upload_and_ask_a_question_whose_answer_streams(
    member: Visit, chat_server: tuple[FakeChatCompletions, str], tmp_path: Path
) -> None:
    fake, _ = chat_server
    page = member.page
    member.goto("/")
    page.get_by_label("Describe the image you want to create").fill("A lighthouse at dusk")
    page.get_by_role("button", name="Generate").click()
    expect(page).to_have_url(re.compile(r"/sessions/[0-9a-f-]{36}$"))
    expect_step_done(page, 1)

    # "Describe" on an uploaded image: the description shows under it, ready to be the prompt.
    picture = tmp_path / "harbour.png"
    Image.new("RGB", (320, 240), (30, 90, 200)).save(picture)
    page.locator("[data-file-input]").set_input_files(str(picture))
    chip = page.locator("[data-composer-context] .chip", has_text="Starting from your image")
    chip.get_by_role("button", name="Describe this image").click()
    caption = page.locator("[data-upload-caption] [data-caption-text]")
    expect(caption).to_have_text("A picture of 320x240 pixels, mostly #1e5ac8.", timeout=30_000)
    page.locator("[data-upload-caption]").get_by_role("button", name="Use as prompt").click()
    expect(page.locator("[data-prompt]")).to_have_value("A picture of 320x240 pixels, mostly #1e5ac8.")
    chip.get_by_role("button", name="Remove this image").click()
    expect(page.locator("[data-upload-caption]")).to_be_hidden()

    # A question: the model stalls after four words, and the page already shows them.
    page.get_by_role("radio", name="Ask").check()
    expect(page.locator("[data-composer-submit]")).to_have_text("Ask")
    release = fake.hold_stream(after_words=4)
    fake.reply_next(ANSWER)
    try:
        submit_prompt(page, "what would make this more cinematic?")
        answer = page.locator(".turn-reply").last
        expect(answer.locator("[data-reply-text]")).to_have_text("Lower the sun and", timeout=30_000)
        expect(answer).to_have_attribute("data-status", "processing")
        assert fake.holding.is_set() and fake.last.json["stream"] is True
    finally:
        release.set()
    expect(answer).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(answer.locator("[data-reply-text]")).to_have_text("Lower the sun and add long shadows.")
    expect(answer).to_contain_text("By llama3.2:1b")
    expect(answer.locator("[data-suggested-prompt-text]")).to_have_text("a lighthouse at dusk, low sun, long shadows")
    question = fake.last.json["messages"]
    assert "Step 1: text to image" in question[1]["content"]

    # One click sends the suggestion as the next image turn.
    answer.get_by_role("button", name="Send this prompt").click()
    expect_step_done(page, 2)
    expect(page.locator(".turn-user").last).to_contain_text("a lighthouse at dusk, low sun, long shadows")
    # The answer is still there after a reload (it was stored, not only streamed).
    page.reload()
    expect(page.locator(".turn-reply [data-reply-text]")).to_have_text("Lower the sun and add long shadows.")

    # A refused question says why, and can be asked again.
    fake.fail_next(Fault.content_rejection(style="refusal"))
    page.get_by_role("radio", name="Ask").check()
    submit_prompt(page, "is this any good?")
    refused = page.locator(".turn-reply").last
    expect(refused).to_have_attribute("data-status", "failed", timeout=30_000)
    expect(refused.locator("[data-reply-reason]")).to_contain_text("(content_rejected)")
    refused.get_by_role("button", name="Ask again").click()
    again = page.locator(".turn-reply").last
    expect(again.locator("[data-reply-text]")).to_have_text("An answer about is this any good?", timeout=30_000)
    member.assert_no_errors()
