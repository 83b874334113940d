"""Session titles from the language model (after the first turn), falling back to the first prompt."""

from __future__ import annotations

from imagestudio.language import LanguageRegistry
from tests.api.helpers import API, run_queue
from tests.fakes.chat_openai import FakeChatCompletions, chat_model
from tests.fakes.common import Fault

PROMPT = "a lighthouse on a cliff at sunset with gulls and a stormy sea behind it"


def _first_turn(client, prompt: str = PROMPT) -> str:
    session = client.post(f"{API}/sessions", json={}).json()
    turn = client.post(
        f"{API}/sessions/{session['id']}/messages", json={"content": prompt, "mode": "fresh", "width": 64, "height": 64}
    )
    assert turn.status_code == 201, turn.text
    return session["id"]


def _title(client, session_id: str) -> str:
    return client.get(f"{API}/sessions/{session_id}").json()["title"]


def test_the_language_model_titles_a_new_session(accounts, container) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    owner = accounts.make()
    fake.reply_next('"Stormy Lighthouse at Sunset."')
    session_id = _first_turn(owner.client)
    assert _title(owner.client, session_id) == PROMPT  # the prompt names it at once
    run_queue(container)
    assert _title(owner.client, session_id) == "Stormy Lighthouse at Sunset"
    assert PROMPT in fake.last.json["messages"][0]["content"]
    # A second turn leaves the title alone.
    owner.client.post(f"{API}/sessions/{session_id}/messages", json={"content": "add a boat", "mode": "iterate"})
    run_queue(container)
    assert _title(owner.client, session_id) == "Stormy Lighthouse at Sunset"
    assert len(fake.requests) == 1


def test_a_renamed_session_keeps_its_name(accounts, container) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    owner = accounts.make()
    session_id = _first_turn(owner.client)
    assert owner.client.patch(f"{API}/sessions/{session_id}", json={"title": "Mine"}).status_code == 200
    run_queue(container)
    assert _title(owner.client, session_id) == "Mine"


def test_without_a_model_or_when_it_fails_the_prompt_stays_the_title(accounts, container) -> None:
    owner = accounts.make()
    plain = _first_turn(owner.client)
    run_queue(container)  # the built-in describer writes no titles
    fake = FakeChatCompletions()
    fake.fail_next(Fault.rate_limit(retry_after=1))
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    failing = _first_turn(owner.client, "a fox in the snow")
    run_queue(container)
    assert _title(owner.client, plain) == PROMPT
    assert _title(owner.client, failing) == "a fox in the snow"
    assert len(fake.requests) == 1
