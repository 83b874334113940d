"""The admin page shows each provider's discovered models, when they were listed, and refreshes them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import expect

from tests.conftest import DATABASES, PostgresServer, make_migrated_database
from tests.fakes.a1111 import SAMPLERS, FakeA1111
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import serve
from tests.web.conftest import migrated_studio_database
from tests.web.live import LiveServer, Visit, running, studio_settings
from tests.web.studio import expect_step_done, submit_prompt

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI()
    with serve(fake.app) as server:
        yield fake, server.base_url


@pytest.fixture(scope="module", params=DATABASES)
def listing_studio(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    openai_fake: tuple[FakeOpenAI, str],
) -> Iterator[LiveServer]:
    """A studio whose OpenAI provider is the fake, over real HTTP; it lists models at start only."""
    url = make_migrated_database(request.param, tmp_path_factory.mktemp("studio"), postgres_server)
    fake, base_url = openai_fake
    fake.models = ["gpt-image-1", "gpt-image-2", "whisper-1"]
    settings = studio_settings(
        url,
        tmp_path_factory.mktemp("studio-data"),
        openai_api_key=fake.api_key,
        openai_base_url=f"{base_url}/v1",
        provider_refresh_seconds=0,
    )
    with running(settings) as server:
        yield server


def test_admin_sees_discovered_models_and_refreshes_them(
    listing_studio: LiveServer, openai_fake: tuple[FakeOpenAI, str], visits: Callable[..., Visit]
) -> None:
    fake, _ = openai_fake
    visit = visits(listing_studio)
    visit.log_in(listing_studio.create_user(admin=True))
    page = visit.page
    visit.goto("/admin")
    card = page.get_by_role("article", name="OpenAI")
    # Listed at start: the new model by its family's name, no text or audio model.
    expect(card.get_by_role("list", name="Models")).to_contain_text("GPT Image (gpt-image-2)")
    expect(card).to_contain_text("Models listed by the provider")
    expect(card.locator("time")).to_have_count(1)
    expect(card).not_to_contain_text("whisper")
    expect(page.get_by_role("article", name="Built-in renderer")).to_contain_text("the studio's own list")

    fake.models = ["gpt-image-1", "gpt-image-3"]
    page.get_by_role("button", name="Refresh models").click()

    expect(page.locator(".toast-success")).to_contain_text("Models refreshed.")
    models = card.get_by_role("list", name="Models")
    expect(models).to_contain_text("GPT Image (gpt-image-3)")
    expect(models).not_to_contain_text("gpt-image-2")
    visit.assert_no_errors()


@pytest.fixture(scope="module", params=DATABASES)
def webui_studio(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[tuple[LiveServer, FakeA1111]]:
    """A studio whose AUTOMATIC1111 provider is the fake webui over real HTTP, listed at start."""
    fake = FakeA1111(step_delay=0.0)
    url = migrated_studio_database(request.param, tmp_path_factory, postgres_server)
    with serve(fake.app) as webui:
        settings = studio_settings(
            url, tmp_path_factory.mktemp("webui-data"), a1111_url=webui.base_url, provider_refresh_seconds=0
        )
        with running(settings) as server:
            yield server, fake


def test_the_composer_offers_the_servers_samplers_and_schedulers(
    webui_studio: tuple[LiveServer, FakeA1111], visits: Callable[..., Visit]
) -> None:
    server, fake = webui_studio
    visit = visits(server)
    visit.log_in(server.create_user(admin=True))
    page = visit.page
    # The admin page shows what the server listed at start.
    visit.goto("/admin")
    card = page.get_by_role("article", name="a1111", exact=True)
    expect(card.get_by_role("list", name="Models")).to_contain_text("sd_xl_base_1.0.safetensors [31e35c80fc]")
    expect(card).to_contain_text("Samplers: Euler a, Euler, DPM++ 2M")
    expect(card).to_contain_text("Schedulers: automatic, uniform, karras, exponential")
    expect(card.locator("time")).to_have_count(1)

    session = visit.api("POST", "/sessions", {})
    visit.goto(f"/sessions/{session['id']}")
    page.get_by_text("Model and parameters").click()
    sampler = page.get_by_label("Sampler", exact=True)
    expect(sampler).to_be_hidden()  # the built-in renderer lists none

    page.get_by_label("Provider", exact=True).select_option("a1111")
    expect(sampler).to_be_visible()
    expect(sampler.locator("option")).to_have_text(["Server default", *SAMPLERS])
    sampler.select_option("DPM++ 2M")
    page.get_by_label("Scheduler", exact=True).select_option("karras")
    page.get_by_label("Size", exact=True).select_option(label="Custom size…")
    page.get_by_label("Width", exact=True).fill("64")
    page.get_by_label("Height", exact=True).fill("64")
    submit_prompt(page, "a lighthouse at dusk")
    expect_step_done(page, 1)

    [sent] = fake.bodies("/sdapi/v1/txt2img")
    assert (sent["sampler_name"], sent["scheduler"]) == ("DPM++ 2M", "karras")
    visit.assert_no_errors()
