"""Chat turns with mode reply: a question about the session answered in words, as a durable job."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select

from imagestudio.generations.events import events_after
from imagestudio.language import LanguageRegistry
from imagestudio.models import Generation, Message
from tests.api.helpers import API, assert_problem, error_fields, run_queue, upload
from tests.fakes.chat_openai import FakeChatCompletions, chat_model


def _counts(container) -> tuple[int, int]:
    with container.db.reading() as db:
        return (
            db.scalar(select(func.count()).select_from(Message)),
            db.scalar(select(func.count()).select_from(Generation)),
        )


def _session_with_a_step(client, container) -> str:
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    turn = client.post(
        f"{API}/sessions/{session_id}/messages",
        json={"content": "a lighthouse at dusk", "width": 64, "height": 64, "prompt_options": {"style": "watercolour"}},
    )
    assert turn.status_code == 201, turn.text
    run_queue(container)
    return session_id


def _ask(client, session_id: str, **body):
    body.setdefault("mode", "reply")
    return client.post(f"{API}/sessions/{session_id}/messages", json=body)


def test_a_question_is_answered_in_words_with_a_suggested_prompt(accounts, container) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake, model="llama3.2:1b")], default="openai")
    owner = accounts.make()
    session_id = _session_with_a_step(owner.client, container)
    patched = owner.client.patch(f"{API}/sessions/{session_id}", json={"context": "for a travel brochure"})
    assert patched.status_code == 200, patched.text
    fake.reply_next(
        "Lower the sun and add long shadows.\n\n```prompt\na lighthouse at dusk, low sun, long shadows\n```"
    )

    asked = _ask(owner.client, session_id, content="what would make this more cinematic?")
    assert asked.status_code == 201, asked.text
    turn = asked.json()
    user, assistant, job = turn["user_message"], turn["assistant_message"], turn["generation"]
    assert (user["type"], user["content"]) == ("text", "what would make this more cinematic?")
    assert (assistant["type"], assistant["status"], assistant["content"]) == ("text", "queued", "")
    assert (job["type"], job["provider"], job["model"]) == ("reply", "openai", "llama3.2:1b")
    assert assistant["generation_id"] == job["id"] == turn["generation_id"]

    run_queue(container)
    detail = owner.client.get(f"{API}/sessions/{session_id}").json()
    answer = next(m for m in detail["messages"] if m["id"] == assistant["id"])
    assert answer["status"] == "succeeded" and answer["type"] == "text"
    assert answer["content"] == "Lower the sun and add long shadows."
    assert answer["suggested_prompt"] == "a lighthouse at dusk, low sun, long shadows"
    assert answer["model"] == "llama3.2:1b" and answer["by_ai"] is True
    assert answer["prompt_tokens"] > 0 and answer["completion_tokens"] == len(fake.last_reply.split())
    # The session's steps are its images: the reply is not one of them.
    assert [g["type"] for g in detail["generations"]] == ["text2img"]
    assert [node["step"] for node in detail["lineage"]] == [1]
    # The model was told the session's facts and the question, last.
    sent = fake.last.json["messages"]
    assert "Step 1: text to image" in sent[1]["content"] and 'Prompt: "a lighthouse at dusk"' in sent[1]["content"]
    assert "watercolour style" in sent[1]["content"]  # the prompt that was sent, with its options
    assert "The user's note for this session: for a travel brochure" in sent[1]["content"]
    assert sent[-1] == {"role": "user", "content": "what would make this more cinematic?"}
    assert fake.last.json["stream"] is True
    # The answer streamed as delta events on the session's stream, in order, adding up to the text.
    with container.db.reading() as db:
        events = [
            e
            for e in events_after(db, session_id=uuid.UUID(session_id), owner_id=uuid.UUID(owner.id))
            if str(e.generation_id) == job["id"]
        ]
    deltas = [e.payload for e in events if e.type == "delta"]
    assert "".join(d["text"] for d in deltas) == fake.last_reply
    assert [d["offset"] for d in deltas] == [sum(len(d["text"]) for d in deltas[:i]) for i in range(len(deltas))]
    assert [e.type for e in events][-1] == "succeeded" and events[0].type == "queued"
    # Its tokens count in the usage, for its provider.
    usage = owner.client.get(f"{API}/me/usage").json()["today"]
    openai = next(p for p in usage["by_provider"] if p["provider"] == "openai")
    assert (openai["prompt_tokens"], openai["completion_tokens"]) == (
        answer["prompt_tokens"],
        answer["completion_tokens"],
    )


def test_without_a_language_model_the_facts_are_reported_honestly(accounts, container) -> None:
    owner = accounts.make()
    session_id = _session_with_a_step(owner.client, container)
    turn = _ask(owner.client, session_id, content="describe step 1").json()
    assert (turn["generation"]["provider"], turn["generation"]["model"]) == ("builtin", "session-facts")
    run_queue(container)
    [answer] = [
        m
        for m in owner.client.get(f"{API}/sessions/{session_id}/messages").json()["items"]
        if m["id"] == turn["assistant_message"]["id"]
    ]
    assert answer["status"] == "succeeded" and answer["by_ai"] is False
    assert answer["content"].startswith("No language model is configured, so this is not an AI answer")
    assert "Step 1: text to image, 64x64, builtin/" in answer["content"]
    assert 'Prompt: "a lighthouse at dusk"' in answer["content"] and "1 image" in answer["content"]
    assert answer["suggested_prompt"] is None
    assert (answer["prompt_tokens"], answer["completion_tokens"]) == (0, 0)
    # A question is not an image prompt: the prompt history keeps only the image's.
    prompts = owner.client.get(f"{API}/prompts").json()["items"]
    assert [item["prompt"] for item in prompts] == ["a lighthouse at dusk"]


def test_a_reply_may_be_about_an_image_which_goes_to_the_vision_model(accounts, container) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry(
        [chat_model(fake, model="llama3.2:1b", vision_model="llava:7b")], default="openai"
    )
    owner = accounts.make()
    session_id = _session_with_a_step(owner.client, container)
    output = owner.client.get(f"{API}/sessions/{session_id}").json()["generations"][0]["outputs"][0]
    turn = _ask(owner.client, session_id, content="what colours are here?", source_asset_id=output["id"]).json()
    assert turn["generation"]["model"] == "llava:7b"
    run_queue(container)
    answer = owner.client.get(f"{API}/generations/{turn['generation_id']}").json()
    assert answer["status"] == "succeeded"
    assert fake.last.json["model"] == "llava:7b"
    # The fake names the size of the picture it decoded: the output itself was sent.
    message = owner.client.get(f"{API}/sessions/{session_id}/messages", params={"limit": 1}).json()["items"][0]
    assert message["content"].startswith("A picture of 64x64 pixels")


def test_a_failing_model_fails_the_reply_and_says_why(accounts, container) -> None:
    from tests.fakes.common import Fault

    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    owner = accounts.make()
    session_id = owner.client.post(f"{API}/sessions", json={}).json()["id"]
    fake.fail_next(Fault.content_rejection(style="refusal"))
    turn = _ask(owner.client, session_id, content="say something rude").json()
    run_queue(container)
    job = owner.client.get(f"{API}/generations/{turn['generation_id']}").json()
    assert (job["status"], job["error"]["code"], job["attempt"]) == ("failed", "content_rejected", 1)
    message = owner.client.get(f"{API}/sessions/{session_id}/messages", params={"limit": 1}).json()["items"][0]
    assert (message["status"], message["content"]) == ("failed", "")
    # A reply is asked again, not retried as a generation.
    assert_problem(
        owner.client.post(f"{API}/generations/{turn['generation_id']}/retry"), 422, "invalid_generation_request"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({"content": "why?", "num_images": 2}, "num_images"),
        ({"content": "why?", "width": 512}, "width"),
        ({"content": "why?", "params": {"steps": 20}}, "params"),
        ({"content": "why?", "prompt_options": {"style": "ink"}}, "prompt_options"),
        ({"content": "why?", "enhance_prompt": True}, "enhance_prompt"),
        ({"content": "why?", "provider": "nobody"}, "provider"),
        ({"content": "why?", "provider": "gemini"}, "provider"),  # known, but no key is set
        ({"content": "why?", "source_asset_id": "0190aaaa-0000-7000-8000-000000000000"}, "source_asset_id"),
        ({"content": "why?", "mask_asset_id": "0190aaaa-0000-7000-8000-000000000000"}, "mask_asset_id"),
        ({"content": "x" * 4001}, "content"),
        ({"content": "why?", "mode": "answer"}, "mode"),
    ],
)
def test_bad_questions_are_refused_and_change_nothing(accounts, container, body: dict, field: str) -> None:
    container.language = LanguageRegistry.from_settings(container.settings, None)  # type: ignore[arg-type]
    owner = accounts.make()
    session_id = owner.client.post(f"{API}/sessions", json={}).json()["id"]
    before = _counts(container)
    response = _ask(owner.client, session_id, **body)
    assert response.status_code == 422, response.text
    assert any(field in name for name in error_fields(response)), response.json()
    assert _counts(container) == before


def test_another_users_session_or_image_is_not_theirs(accounts, container) -> None:
    owner, stranger = accounts.make(), accounts.make()
    session_id = owner.client.post(f"{API}/sessions", json={}).json()["id"]
    foreign = upload(owner.client).json()["id"]
    stranger_session = stranger.client.post(f"{API}/sessions", json={}).json()["id"]
    before = _counts(container)
    assert_problem(_ask(stranger.client, session_id, content="what is this?"), 404, "not_found")
    refused = _ask(stranger.client, stranger_session, content="what is this?", source_asset_id=foreign)
    assert_problem(refused, 422, "invalid_generation_request")
    assert error_fields(refused) == {"source_asset_id"}
    assert _counts(container) == before
