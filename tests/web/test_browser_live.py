"""The session page follows a running generation over its event stream.

The provider here stops halfway and stays there until the test lets it go, so the page cannot learn
of the turn, its progress or its end from the fetch it makes when it opens: the turn is created only
after the page's stream is open, and everything after that reaches the page as events.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import expect

from imagestudio.bootstrap import build
from imagestudio.providers.base import (
    CancellationToken,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from tests.conftest import DATABASES, PostgresServer, make_migrated_database
from tests.generations.scripted import ScriptedProvider
from tests.web.live import LiveServer, Visit, running, studio_settings
from tests.web.studio import expect_step_done, turn

pytestmark = pytest.mark.browser

STEPS = 4
HALFWAY = 2
BOUND_SECONDS = 60.0
# How often the provider repeats its halfway report while held (a real sampler reports every step);
# the worker writes at most one progress event per interval, so repeats let one through.
REPORT_EVERY = 0.1


class HeldHalfway(ScriptedProvider):
    """Reports steps 1 and 2 of 4, then keeps reporting step 2 until `release` is set."""

    name = "held"

    def __init__(self) -> None:
        super().__init__(steps=STEPS)
        self.halfway = threading.Event()
        self.release = threading.Event()

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        progress(1, STEPS)
        self.halfway.set()
        while not self.release.is_set():
            cancel.raise_if_cancelled()
            progress(HALFWAY, STEPS)
            await asyncio.sleep(REPORT_EVERY)
        for step in range(HALFWAY + 1, STEPS + 1):
            progress(step, STEPS)
        # The image itself comes from the scripted provider (its progress already reported above).
        return await super().generate(request, lambda step, total: None, cancel)


@pytest.fixture(scope="module", params=DATABASES)
def held_studio(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer
) -> Iterator[tuple[LiveServer, HeldHalfway]]:
    url = make_migrated_database(request.param, tmp_path_factory.mktemp("held"), postgres_server)
    provider = HeldHalfway()
    settings = studio_settings(url, tmp_path_factory.mktemp("held-data"))
    # Registered before the server starts: its worker serves the providers it was started with.
    container = build(settings)
    container.registry.register(provider)
    container.registry.sync_to_database(container.db)
    try:
        with running(settings, container) as server:
            yield server, provider
    finally:
        container.close()


def test_the_page_shows_progress_and_the_result_from_the_stream(
    held_studio: tuple[LiveServer, HeldHalfway], visits: Callable[..., Visit]
) -> None:
    server, provider = held_studio
    visit = visits(server)
    visit.log_in(server.create_user())
    page = visit.page
    session = visit.api("POST", "/sessions", {})
    with page.expect_response(lambda response: f"/api/v1/sessions/{session['id']}/events" in response.url) as opened:
        visit.goto(f"/sessions/{session['id']}")
    assert opened.value.status == 200

    created = visit.api(
        "POST",
        f"/sessions/{session['id']}/messages",
        {"content": "a lighthouse, held halfway", "mode": "fresh", "provider": "held", "width": 64, "height": 64},
    )
    assert provider.halfway.wait(BOUND_SECONDS), "the worker never started the generation"
    try:
        # The turn appears and its progress moves while the generation is running.
        expect(turn(page, 1)).to_have_attribute("data-status", "processing")
        expect(turn(page, 1)).to_contain_text(f"step {HALFWAY} of {STEPS}")
    finally:
        provider.release.set()
    expect_step_done(page, 1)
    assert visit.api("GET", f"/generations/{created['generation_id']}")["status"] == "succeeded"
    visit.assert_no_errors()
