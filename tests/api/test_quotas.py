"""Quotas hold under concurrency: 20 simultaneous requests against a quota of 5 queue exactly 5."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select, update

from imagestudio.models import Generation, Message, RateCounter, User
from tests.api.helpers import API, assert_problem

SMALL = {"width": 64, "height": 64}


def _limit(container, user_id: str, **limits) -> None:
    with container.db.writing() as db:
        db.execute(update(User).where(User.id == uuid.UUID(user_id)).values(**limits))


def _count(container, model, **where) -> int:
    with container.db.reading() as db:
        statement = select(func.count()).select_from(model)
        for name, value in where.items():
            statement = statement.where(getattr(model, name) == value)
        return db.scalar(statement)


def _fire(calls: int, send) -> list:
    """Send `calls` requests at once (released together by a barrier)."""
    barrier = threading.Barrier(calls)

    def one(index: int):
        barrier.wait()
        return send(index)

    with ThreadPoolExecutor(calls) as pool:
        return list(pool.map(one, range(calls)))


@pytest.mark.parametrize("route", ["generations", "chat"])
def test_concurrent_requests_never_pass_the_daily_quota(accounts, container, route) -> None:
    account = accounts.make()
    _limit(container, account.id, daily_image_quota=5)
    client = account.bearer()
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]

    def send(index: int):
        if route == "chat":
            body = {"content": f"a kite {index}", "mode": "fresh", **SMALL}
            return client.post(f"{API}/sessions/{session_id}/messages", json=body)
        return client.post(f"{API}/generations", json={"prompt": f"a kite {index}", **SMALL})

    responses = _fire(20, send)
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 5 + [429] * 15, [r.text for r in responses if r.status_code not in (201, 429)]
    for response in responses:
        if response.status_code == 429:
            assert_problem(response, 429, "quota_exceeded")
            assert 1 <= int(response.headers["Retry-After"]) <= 86400
    assert _count(container, Generation) == 5
    assert _count(container, Message) == (10 if route == "chat" else 0)
    with container.db.reading() as db:
        assert db.scalar(select(RateCounter.hits).where(RateCounter.bucket == f"images:{account.id}")) == 5


def test_rate_per_minute_and_image_counts(accounts, container) -> None:
    account = accounts.make()
    client = account.client
    _limit(container, account.id, rate_per_minute=2, daily_image_quota=6)
    assert client.post(f"{API}/generations", json={"prompt": "a", "num_images": 4, **SMALL}).status_code == 201
    # Three more images would make seven: refused whole, nothing counted.
    assert_problem(
        client.post(f"{API}/generations", json={"prompt": "b", "num_images": 3, **SMALL}), 429, "quota_exceeded"
    )
    assert client.post(f"{API}/generations", json={"prompt": "c", "num_images": 2, **SMALL}).status_code == 201
    third = client.post(f"{API}/generations", json={"prompt": "d", **SMALL})
    assert_problem(third, 429, "rate_limited")
    assert 1 <= int(third.headers["Retry-After"]) <= 60
    assert _count(container, Generation) == 2
    # A request refused for another reason (422) uses up nothing.
    other = accounts.make()
    _limit(container, other.id, daily_image_quota=1)
    assert_problem(other.client.post(f"{API}/generations", json={"prompt": "e", "width": 100, "height": 100}), 422)
    assert other.client.post(f"{API}/generations", json={"prompt": "f", **SMALL}).status_code == 201
    assert_problem(other.client.post(f"{API}/generations", json={"prompt": "g", **SMALL}), 429, "quota_exceeded")
    _limit(container, other.id, daily_image_quota=0)
    assert_problem(other.client.post(f"{API}/generations", json={"prompt": "h", **SMALL}), 429, "quota_exceeded")


def test_users_without_limits_of_their_own_get_the_configured_defaults(accounts, container) -> None:
    container.settings.default_rate_per_minute = 1
    container.settings.default_daily_image_quota = 3
    plain = accounts.make().client
    assert plain.post(f"{API}/generations", json={"prompt": "a", **SMALL}).status_code == 201
    assert_problem(plain.post(f"{API}/generations", json={"prompt": "b", **SMALL}), 429, "rate_limited")
    # Their own rate replaces the default rate; the default daily quota still holds.
    own_rate = accounts.make()
    _limit(container, own_rate.id, rate_per_minute=5)
    assert own_rate.client.post(f"{API}/generations", json={"prompt": "c", "num_images": 2, **SMALL}).status_code == 201
    assert_problem(
        own_rate.client.post(f"{API}/generations", json={"prompt": "d", "num_images": 2, **SMALL}),
        429,
        "quota_exceeded",
    )
    assert own_rate.client.post(f"{API}/generations", json={"prompt": "e", **SMALL}).status_code == 201
    # Their own daily quota replaces the default one; the default rate still holds.
    own_quota = accounts.make()
    _limit(container, own_quota.id, daily_image_quota=10)
    four = {"prompt": "f", "num_images": 4, **SMALL}
    assert own_quota.client.post(f"{API}/generations", json=four).status_code == 201
    assert_problem(own_quota.client.post(f"{API}/generations", json={"prompt": "g", **SMALL}), 429, "rate_limited")


def test_an_unconfirmed_address_is_refused_new_work_when_the_studio_asks_for_it(accounts, container) -> None:
    container.settings.email_verification = "required"
    unconfirmed, confirmed = accounts.make(), accounts.make()
    _limit(container, unconfirmed.id, email_verified_at=None)
    refused = unconfirmed.client.post(f"{API}/generations", json={"prompt": "a", **SMALL})
    body = assert_problem(refused, 403, "email_unverified")
    assert body["detail"] == (
        f"Confirm your address first: open the link mailed to {unconfirmed.email} (or ask for a new one)."
    )
    assert confirmed.client.post(f"{API}/generations", json={"prompt": "b", **SMALL}).status_code == 201
    container.settings.email_verification = "off"
    assert unconfirmed.client.post(f"{API}/generations", json={"prompt": "c", **SMALL}).status_code == 201
    assert _count(container, Generation) == 2
