"""enhance_prompt on generations and chat turns, the user setting that makes it the default, and what
the answer and the PNG say about how the prompt was made."""

from __future__ import annotations

import pytest

from imagestudio.assets.images import read_png_metadata
from imagestudio.language import LanguageRegistry
from tests.api.helpers import API, assert_problem, error_fields, run_queue
from tests.fakes.chat_openai import FakeChatCompletions, chat_model

OPTIONS = {"shot_type": "wide shot", "lighting": "golden hour"}


@pytest.fixture
def fake(container) -> FakeChatCompletions:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    return fake


def _create(client, **fields):
    body = {"prompt": "a lighthouse", "width": 64, "height": 64, "prompt_options": OPTIONS, **fields}
    response = client.post(f"{API}/generations", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_an_enhanced_generation_records_how_its_prompt_was_made(accounts, container, fake) -> None:
    owner = accounts.make()
    fake.reply_next("A lighthouse on a wide coast in golden hour light")
    queued = _create(owner.client, enhance_prompt=True)
    assert (queued["enhance_prompt"], queued["prompt_method"], queued["enhanced_prompt"]) == (True, None, None)
    run_queue(container)
    done = owner.client.get(f"{API}/generations/{queued['id']}").json()
    assert done["status"] == "succeeded"
    assert (done["prompt"], done["enhanced_prompt"], done["prompt_method"]) == (
        "a lighthouse",
        "A lighthouse on a wide coast in golden hour light",
        "language_model",
    )
    assert done["prompt_options"]["shot_type"] == "wide shot"
    plan = done["prompt_plan"]
    assert (plan["provider"], plan["model"], plan["failure"]) == ("openai", "gpt-4o-mini", None)
    assert plan["completion_tokens"] == 10 and plan["prompt_tokens"] > 0
    png = owner.client.get(f"{API}/assets/{done['outputs'][0]['id']}/content").content
    metadata = read_png_metadata(png)
    assert metadata["prompt"] == "A lighthouse on a wide coast in golden hour light"
    assert (metadata["original_prompt"], metadata["prompt_method"]) == ("a lighthouse", "language_model")


def test_without_a_language_model_the_template_is_recorded_with_the_reason(accounts, container) -> None:
    owner = accounts.make()
    queued = _create(owner.client, enhance_prompt=True)
    run_queue(container)
    done = owner.client.get(f"{API}/generations/{queued['id']}").json()
    assert (done["status"], done["prompt_method"]) == ("succeeded", "template")
    assert done["enhanced_prompt"] == "a lighthouse, wide shot, golden hour lighting"
    assert done["prompt_plan"]["failure"]["code"] == "provider_not_configured"


def test_the_setting_makes_enhancement_the_default_and_a_request_may_say_no(accounts, container, fake) -> None:
    owner = accounts.make()
    assert _create(owner.client)["prompt_method"] == "template"  # off by default: decided at once
    settings = owner.client.patch(f"{API}/me/settings", json={"enhance_prompt": True})
    assert settings.status_code == 200 and settings.json()["enhance_prompt"] is True
    assert _create(owner.client)["enhance_prompt"] is True
    refused = _create(owner.client, enhance_prompt=False)
    assert (refused["enhance_prompt"], refused["prompt_method"]) == (False, "template")


def test_a_chat_turn_may_ask_for_enhancement(accounts, container, fake) -> None:
    owner = accounts.make()
    session = owner.client.post(f"{API}/sessions", json={}).json()
    fake.reply_next("A quiet harbour at dawn, mist over the water")
    turn = owner.client.post(
        f"{API}/sessions/{session['id']}/messages",
        json={"content": "a harbour", "mode": "fresh", "enhance_prompt": True, "width": 64, "height": 64},
    )
    assert turn.status_code == 201, turn.text
    user_message, assistant_message = turn.json()["user_message"], turn.json()["assistant_message"]
    assert (user_message["type"], user_message["model"]) == ("text", None)
    assert (assistant_message["type"], assistant_message["model"]) == ("image", "builtin-procedural")
    assert (assistant_message["prompt_tokens"], assistant_message["completion_tokens"]) == (None, None)
    run_queue(container)
    generation = owner.client.get(f"{API}/generations/{turn.json()['generation_id']}").json()
    assert (generation["prompt_method"], generation["enhanced_prompt"]) == (
        "language_model",
        "A quiet harbour at dawn, mist over the water",
    )


@pytest.mark.parametrize("value", ["yes", 1, None, {"on": True}])
def test_enhance_prompt_must_be_a_boolean(accounts, container, value) -> None:
    owner = accounts.make()
    response = owner.client.post(f"{API}/generations", json={"prompt": "a fox", "enhance_prompt": value})
    if value is None:  # null means "use my setting"
        assert response.status_code == 201, response.text
        return
    assert_problem(response, 422, "validation_failed")
    assert error_fields(response) == {"enhance_prompt"}
    assert owner.client.get(f"{API}/generations").json()["items"] == []
