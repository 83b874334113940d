"""Keys and money on the pages: an administrator lets people bring their own OpenAI key and sets
budgets; a person stores their key (then sees only how it ends) and their spend; a session shows
what it cost."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import expect

from tests.conftest import DATABASES, PostgresServer, make_migrated_database
from tests.fakes.openai import FakeOpenAI
from tests.fakes.server import serve
from tests.web.live import LiveServer, Visit, running, studio_settings
from tests.web.studio import start_session, wait_for_generation

pytestmark = pytest.mark.browser

OWN_KEY = "sk-my-own-openai-key-a1b2"


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    fake.other_keys.add(OWN_KEY)
    with serve(fake.app) as server:
        fake.base_url = server.base_url  # type: ignore[attr-defined]
        yield fake


@pytest.fixture(scope="module", params=DATABASES)
def paid_studio(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    openai_fake: FakeOpenAI,
) -> Iterator[LiveServer]:
    """A studio whose OpenAI provider is the fake, with a studio key, over real HTTP."""
    url = make_migrated_database(request.param, tmp_path_factory.mktemp("studio"), postgres_server)
    settings = studio_settings(
        url,
        tmp_path_factory.mktemp("studio-data"),
        openai_api_key=openai_fake.api_key,
        openai_base_url=f"{openai_fake.base_url}/v1",  # type: ignore[attr-defined]
        provider_refresh_seconds=0,
    )
    with running(settings) as server:
        yield server


def test_own_keys_budgets_and_a_sessions_cost(
    paid_studio: LiveServer, openai_fake: FakeOpenAI, visits: Callable[..., Visit]
) -> None:
    admin = visits(paid_studio)
    admin.log_in(paid_studio.create_user(admin=True))
    person_email = paid_studio.create_user()
    page = admin.page
    admin.goto("/admin")
    policy = page.locator('[data-policy="openai"]')
    policy.get_by_label("Users may bring their own openai key").check()
    expect(policy.get_by_label("Users may bring their own openai key")).to_be_checked()
    page.get_by_label("Studio budget a month").fill("50")
    page.get_by_role("button", name="Save budget").click()
    expect(page.locator("[data-budget-state]")).to_contain_text("50.00 USD left")
    person_budget = page.get_by_label(f"Monthly budget for {person_email}")
    person_budget.fill("12.5")
    person_budget.locator("xpath=ancestor::tr").get_by_role("button", name="Save").click()
    expect(page.get_by_label(f"Monthly budget for {person_email}")).to_have_value("12.5")
    admin.assert_no_errors()

    person = visits(paid_studio)
    person.log_in(person_email)
    person.goto("/settings")
    row = person.page.locator('[data-own-key="openai"]')
    expect(row).to_contain_text("Not set: the studio's key serves you.")
    row.get_by_label("Your openai key").fill(OWN_KEY)
    row.get_by_role("button", name="Save key").click()
    expect(row).to_contain_text("Set, ending in a1b2")
    expect(row.get_by_label("Your openai key")).to_have_value("")
    assert OWN_KEY not in person.page.content()
    expect(person.page.locator("[data-usage-spend]")).to_contain_text("Your monthly budget: 12.50 USD")

    session_id, turn = start_session(
        person, "a kite over the sea", provider="openai", model="gpt-image-1", width=1024, height=1024
    )
    done = wait_for_generation(person, turn["generation_id"])
    assert done["status"] == "succeeded" and done["own_key"] is True
    assert openai_fake.requests[-1].headers["authorization"] == f"Bearer {OWN_KEY}"
    person.goto(f"/sessions/{session_id}")
    expect(person.page.locator("[data-session-cost]")).to_have_text("Cost 0.01113 USD")
    person.assert_no_errors()
    person.goto("/settings")
    expect(person.page.locator("[data-usage-spend]")).to_contain_text("of which your own keys paid 0.01113 USD")
    person.assert_no_errors()
