"""GET /api/v1/me/usage: images and tokens today and this month, by provider, and what the quota leaves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from imagestudio.language import LanguageRegistry
from imagestudio.models import Asset
from tests.api.helpers import API, assert_problem, run_queue, upload
from tests.fakes.chat_openai import FakeChatCompletions, chat_model


def _generate(client, images: int) -> None:
    response = client.post(
        f"{API}/generations", json={"prompt": "a fox", "num_images": images, "width": 64, "height": 64}
    )
    assert response.status_code == 201, response.text


def test_usage_counts_images_and_tokens_by_provider(accounts, container) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    container.settings.default_daily_image_quota = 10
    owner, other = accounts.make(), accounts.make()
    _generate(owner.client, 2)
    _generate(other.client, 3)
    asset_id = upload(owner.client).json()["id"]
    assert owner.client.post(f"{API}/assets/{asset_id}/captions").status_code == 202
    assert owner.client.post(f"{API}/assets/{asset_id}/captions", json={"provider": "builtin"}).status_code == 202
    run_queue(container)
    [caption] = [
        c for c in owner.client.get(f"{API}/assets/{asset_id}/captions").json()["items"] if c["provider"] == "openai"
    ]

    usage = owner.client.get(f"{API}/me/usage").json()
    for period in ("today", "month"):
        assert usage[period]["images"] == 2
        assert usage[period]["prompt_tokens"] == caption["prompt_tokens"] > 0
        assert usage[period]["completion_tokens"] == caption["completion_tokens"] > 0
        assert usage[period]["by_provider"] == [
            {"provider": "builtin", "images": 2, "prompt_tokens": 0, "completion_tokens": 0},
            {
                "provider": "openai",
                "images": 0,
                "prompt_tokens": caption["prompt_tokens"],
                "completion_tokens": caption["completion_tokens"],
            },
        ]
    assert usage["quota"] == {"daily_images": 10, "images_left_today": 8, "rate_per_minute": None}
    assert other.client.get(f"{API}/me/usage").json()["today"]["images"] == 3


def test_tokens_of_rewritten_prompts_count_for_their_language_model(accounts, container) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    owner = accounts.make()
    response = owner.client.post(
        f"{API}/generations",
        json={"prompt": "a fox", "width": 64, "height": 64, "enhance_prompt": True},
    )
    assert response.status_code == 201, response.text
    run_queue(container)
    plan = owner.client.get(f"{API}/generations/{response.json()['id']}").json()["prompt_plan"]
    assert plan["provider"] == "openai" and plan["completion_tokens"] > 0
    [openai] = [
        p for p in owner.client.get(f"{API}/me/usage").json()["today"]["by_provider"] if p["provider"] == "openai"
    ]
    assert (openai["images"], openai["prompt_tokens"], openai["completion_tokens"]) == (
        0,
        plan["prompt_tokens"],
        plan["completion_tokens"],
    )


def test_yesterday_counts_for_the_month_only(accounts, container) -> None:
    owner = accounts.make()
    _generate(owner.client, 1)
    run_queue(container)
    now = datetime.now(UTC)
    yesterday = now - timedelta(days=1)
    with container.db.writing() as db:
        db.execute(update(Asset).where(Asset.kind == "output").values(created_at=yesterday))
    usage = owner.client.get(f"{API}/me/usage").json()
    assert usage["today"]["images"] == 0 and usage["today"]["by_provider"] == []
    same_month = (yesterday.year, yesterday.month) == (now.year, now.month)
    assert usage["month"]["images"] == (1 if same_month else 0)


def test_usage_needs_a_login(client) -> None:
    assert_problem(client.get(f"{API}/me/usage"), 401)


def test_caption_requests_count_against_the_request_rate(accounts, container) -> None:
    container.settings.default_rate_per_minute = 1
    owner = accounts.make()
    asset_id = upload(owner.client).json()["id"]
    assert owner.client.post(f"{API}/assets/{asset_id}/captions").status_code == 202
    refused = owner.client.post(f"{API}/assets/{asset_id}/captions")
    assert_problem(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert len(owner.client.get(f"{API}/assets/{asset_id}/captions").json()["items"]) == 1


def test_an_administrator_sees_each_users_usage(accounts, container) -> None:
    root, owner, other = accounts.make(admin=True), accounts.make(), accounts.make()
    _generate(owner.client, 2)
    _generate(other.client, 3)
    run_queue(container)
    for account, images in ((owner, 2), (other, 3)):
        response = root.client.get(f"{API}/admin/users/{account.id}/usage")
        assert response.status_code == 200, response.text
        assert response.json() == account.client.get(f"{API}/me/usage").json()
        assert response.json()["today"]["images"] == images
    assert_problem(owner.client.get(f"{API}/admin/users/{other.id}/usage"), 403, "admin_required")
    assert_problem(root.client.get(f"{API}/admin/users/0190f0f0-0000-7000-8000-000000000000/usage"), 404, "not_found")
