"""Generations: create (idempotent), list with filters, cancel, retry, delete; prompts; providers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from imagestudio.models import Generation, RateCounter
from tests.api.helpers import API, assert_problem, error_fields, run_queue, upload

SMALL = {"width": 64, "height": 64}


def _create(client, headers=None, **body):
    return client.post(f"{API}/generations", json={**SMALL, **body}, headers=headers or {})


def _ok(response, status: int = 201) -> dict:
    assert response.status_code == status, response.text
    return response.json()


def _generation_count(container) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(Generation))


def test_create_answers_the_queued_generation_and_an_idempotency_key_replays_it(accounts, container) -> None:
    client = accounts.make().client
    created = _ok(_create(client, prompt="a kite", prompt_options={"style": "ukiyo-e"}, params={"seed": 5}))
    assert created["status"] == "queued" and created["type"] == "text2img" and created["outputs"] == []
    assert created["enhanced_prompt"] == "a kite, ukiyo-e style" and created["params"]["seed"] == 5
    assert created["revised_prompt"] is None  # only a provider that rendered it can revise it
    assert (created["width"], created["height"], created["provider"]) == (64, 64, "builtin")

    key = {"Idempotency-Key": "order-42"}
    first = _ok(_create(client, headers=key, prompt="a boat"))
    again = _ok(_create(client, headers=key, prompt="a boat"), 200)
    assert again["id"] == first["id"]
    assert_problem(_create(client, headers=key, prompt="a different boat"), 409, "idempotency_key_reused")
    assert_problem(_create(client, headers={"Idempotency-Key": "x" * 201}, prompt="a"), 422)
    assert_problem(_create(client, headers={"Idempotency-Key": "tab\there"}, prompt="a"), 400)
    assert _generation_count(container) == 2


@pytest.mark.parametrize("with_input", [False, True], ids=["no inputs", "an init image"])
def test_the_answer_to_a_submission_is_the_generation_as_read_back(accounts, with_input: bool) -> None:
    client = accounts.make().client
    body: dict = {"prompt": "a lantern", "params": {"seed": 9}}
    if with_input:
        asset_id = _ok(upload(client))["id"]
        body |= {"type": "img2img", "source_asset_id": asset_id}
    created = _ok(_create(client, **body))
    assert created == _ok(client.get(f"{API}/generations/{created['id']}"), 200)
    assert created["inputs"] == ([{"asset_id": asset_id, "role": "init"}] if with_input else [])


@pytest.mark.parametrize(
    ("body", "field", "limit"),
    [
        ({"width": 100, "height": 100}, "width", "multiple of 8"),
        ({"width": 4096, "height": 64}, "width", "between 64 and 2048"),
        ({"num_images": 11}, "num_images", "less than or equal to 10"),
        ({"type": "upscale"}, "source_asset_id", "needs a source image"),
        ({"type": "inpaint", "source_asset_id": str(uuid.uuid4())}, "source_asset_id", "no such image"),
        ({"provider": "elsewhere"}, "provider", "unknown provider"),
        ({"params": {"steps": 151}}, "params.steps", "150"),
        ({"params": {"extra": {"nested": {"a": 1}}}}, "params.extra.nested", ""),
        ({"session_id": str(uuid.uuid4())}, "session_id", "no such session"),
        ({"parent_generation_id": str(uuid.uuid4())}, "parent_generation_id", "no such generation"),
        ({"priority": 11}, "priority", "10"),
        ({"sneaky": True}, "sneaky", "Unknown field"),
    ],
)
def test_invalid_requests_name_the_field_and_the_limit(accounts, container, body, field, limit) -> None:
    response = _create(accounts.make().client, prompt="a kite", **body)
    assert_problem(response, 422)
    problem = response.json()
    messages = " ".join(item["message"] for item in problem["errors"] if item["field"].startswith(field))
    assert messages, problem
    assert limit.lower() in (messages + problem["detail"]).lower(), problem
    assert _generation_count(container) == 0


def test_list_filters_and_pages_newest_first(accounts, container) -> None:
    alice, bob = accounts.make(), accounts.make()
    client = alice.client
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    ids = [_ok(_create(client, prompt=f"p{i}", session_id=session_id if i % 2 else None))["id"] for i in range(5)]
    _ok(_create(bob.client, prompt="not alice's"))
    client.post(f"{API}/generations/{ids[0]}/cancel")

    def listed(**params) -> list[str]:
        response = client.get(f"{API}/generations", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert listed() == ids[::-1]
    assert listed(session_id=session_id) == [ids[3], ids[1]]
    assert listed(status="canceled") == [ids[0]]
    assert listed(status="queued", type="text2img", provider="builtin", model="builtin-procedural") == ids[:0:-1]
    assert listed(type="upscale") == [] and listed(provider="other") == []
    now = datetime.now(UTC)
    assert listed(created_after=(now - timedelta(minutes=5)).isoformat()) == ids[::-1]
    assert listed(created_before=(now - timedelta(minutes=5)).isoformat()) == []
    page = client.get(f"{API}/generations", params={"limit": 2}).json()
    second = client.get(f"{API}/generations", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [g["id"] for g in page["items"] + second["items"]] == ids[:0:-1]
    for params, field in (
        ({"status": "sleeping"}, "status"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),  # a time without a zone is ambiguous
        ({"limit": 201}, "limit"),
        ({"cursor": "bm9wZQ"}, "cursor"),
    ):
        response = client.get(f"{API}/generations", params=params)
        assert_problem(response, 422)
        assert any(field in name for name in error_fields(response)), response.json()


def test_cancel_retry_and_delete(accounts, container) -> None:
    owner, other = accounts.make(), accounts.make()
    client = owner.client
    generation = _ok(_create(client, prompt="a kite"))
    path = f"{API}/generations/{generation['id']}"
    assert_problem(client.delete(path), 409, "invalid_generation_state")
    assert_problem(client.post(f"{path}/retry"), 409, "invalid_generation_state")
    canceled = _ok(client.post(f"{path}/cancel"), 200)
    assert canceled["status"] == "canceled" and canceled["cancel_requested"] is True
    assert _ok(client.post(f"{path}/cancel"), 200)["status"] == "canceled"  # already final: unchanged

    retried = _ok(client.post(f"{path}/retry", headers={"Idempotency-Key": "retry-1"}))
    assert retried["retried_from_id"] == generation["id"] and retried["status"] == "queued"
    assert retried["params"]["seed"] == generation["params"]["seed"]
    assert _ok(client.post(f"{path}/retry", headers={"Idempotency-Key": "retry-1"}), 200)["id"] == retried["id"]

    assert_problem(other.client.delete(path), 404, "not_found")
    assert client.delete(path).status_code == 204
    assert_problem(client.get(path), 404, "not_found")
    run_queue(container)
    done = client.get(f"{API}/generations/{retried['id']}").json()
    assert done["status"] == "succeeded" and len(done["outputs"]) == 1
    # A finished step may go too, with its images.
    assert client.delete(f"{API}/generations/{retried['id']}").status_code == 204
    assert_problem(client.get(done["outputs"][0]["content_url"]), 404, "not_found")
    assert_problem(client.post(f"{API}/generations/not-a-uuid/cancel"), 422)


def test_prompt_history_counts_distinct_prompts_and_searches(accounts) -> None:
    alice, bob = accounts.make(), accounts.make()
    for prompt in ("a red kite", "a blue boat", "a red kite", "100% cotton"):
        _ok(_create(alice.client, prompt=prompt))
    _ok(_create(bob.client, prompt="bob's secret"))
    items = alice.client.get(f"{API}/prompts").json()["items"]
    assert [(i["prompt"], i["count"]) for i in items] == [("100% cotton", 1), ("a red kite", 2), ("a blue boat", 1)]
    assert [i["prompt"] for i in alice.client.get(f"{API}/prompts", params={"q": "RED"}).json()["items"]] == [
        "a red kite"
    ]
    assert alice.client.get(f"{API}/prompts", params={"q": "0%c"}).json()["items"] == []
    page = alice.client.get(f"{API}/prompts", params={"limit": 2}).json()
    rest = alice.client.get(f"{API}/prompts", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [i["prompt"] for i in page["items"] + rest["items"]] == [i["prompt"] for i in items]
    assert rest["next_cursor"] is None
    assert_problem(alice.client.get(f"{API}/prompts", params={"cursor": "garbage!"}), 422, "invalid_cursor")


def test_providers_list_what_is_registered(accounts) -> None:
    providers = {p["name"]: p for p in accounts.make().client.get(f"{API}/providers").json()["items"]}
    assert set(providers) == {"builtin", "openai", "stability", "gemini", "a1111", "comfyui", "diffusers"}
    provider = providers["builtin"]
    assert provider["enabled"] and provider["configured"] and provider["default"]
    assert "inpaint" in provider["capabilities"]["types"]
    assert provider["models"][0]["id"] == provider["capabilities"]["default_model"]
    # A provider without its key says so instead of failing at run time.
    openai = providers["openai"]
    assert not openai["configured"] and not openai["default"]
    assert "IMAGESTUDIO_OPENAI_API_KEY" in openai["configuration_problem"]
    assert {m["id"] for m in openai["models"]} == {"gpt-image-1", "gpt-image-1-mini"}
    # Never asked (no key): the studio's own table, and no refresh recorded.
    assert openai["models_refreshed_at"] is None and openai["refresh_problem"] is None


def test_an_unconfigured_provider_is_refused_at_creation(accounts) -> None:
    problem = assert_problem(_create(accounts.make().client, prompt="a fox", provider="stability"), 422)
    assert problem["errors"][0]["field"] == "provider"
    assert "IMAGESTUDIO_STABILITY_API_KEY" in problem["errors"][0]["message"]


def test_blocked_prompts_are_refused_before_anything_is_queued(make_settings, db, tmp_path, accounts) -> None:
    from imagestudio.app import create_app
    from imagestudio.container import Container
    from imagestudio.providers.registry import ProviderRegistry
    from imagestudio.storage import storage_from_url
    from tests.api.helpers import Accounts

    settings = make_settings(prompt_blocklist="forbidden, red dog")
    container = Container(settings, db, storage_from_url(str(tmp_path / "s")), ProviderRegistry.from_settings(settings))
    client = Accounts(create_app(container=container), container).make().client
    for body, field in (
        ({"prompt": "A FORBIDDEN fruit"}, "prompt"),
        ({"prompt": "a red  dog"}, "prompt"),
        ({"prompt": "a cat", "prompt_options": {"style": "forbidden"}}, "prompt_options.style"),
    ):
        response = _create(client, **body)
        assert_problem(response, 422, "content_rejected")
        assert error_fields(response) == {field}
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    turn = client.post(f"{API}/sessions/{session_id}/messages", json={"content": "forbidden things", **SMALL})
    assert_problem(turn, 422, "content_rejected")
    assert error_fields(turn) == {"content"}
    assert _generation_count(container) == 0
    # Whole words only.
    assert _create(client, prompt="forbiddenness and a reddog").status_code == 201
    with db.reading() as session:
        assert session.scalar(select(func.sum(RateCounter.hits))) is None  # no quota configured, none counted


def test_text_no_database_can_store_is_refused_before_any_endpoint(accounts, container) -> None:
    client = accounts.make().client
    json_type = {"Content-Type": "application/json"}
    for body, field in (
        (b'{"prompt": "a\\u0000b", "width": 64, "height": 64}', "prompt"),
        (b'{"prompt": "a\\ud800b", "width": 64, "height": 64}', "prompt"),
        (b'{"prompt": "a", "params": {"extra": {"k\\u0000": 1}}}', "params.extra"),
        (b'{"prompt": "a", "prompt_options": {"style": "\\udfff"}}', "prompt_options.style"),
    ):
        response = client.post(f"{API}/generations", content=body, headers=json_type)
        assert_problem(response, 422, "validation_failed")
        assert error_fields(response) == {field}
    session = client.post(f"{API}/sessions", content=b'{"title": "x\\u0000"}', headers=json_type)
    assert error_fields(session) == {"title"}
    assert error_fields(client.get(f"{API}/sessions", params={"q": "a\x00"})) == {"query.q"}
    for stamp in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        response = client.get(f"{API}/generations", params={"created_after": stamp})
        assert_problem(response, 422)
        assert error_fields(response) == {"query.created_after"}
    # An escaped backslash followed by "u0000" is ordinary text.
    assert (
        client.post(
            f"{API}/generations", content=b'{"prompt": "C:\\\\u0000", "width": 64, "height": 64}', headers=json_type
        ).status_code
        == 201
    )
    assert _generation_count(container) == 1
