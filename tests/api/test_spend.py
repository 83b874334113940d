"""Cost in the API: each generation's cost and usage, a session's total, a user's spend in
/me/usage, spend per user for administrators, and the monthly budgets that stop paid generations
(429 budget_exceeded) while free providers and users' own keys go on."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from imagestudio.config import Settings
from imagestudio.container import Container
from imagestudio.db import Database
from imagestudio.notify import NotificationHub
from tests.api.helpers import API, Account, assert_problem, error_fields, run_queue
from tests.api.paid import FREE, PAINT, PAINT_COST, STUDIO_KEY, paid_container
from tests.fakes.openai import FakeOpenAI

USD = "USD"


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI(api_key=STUDIO_KEY)


@pytest.fixture
def container(db: Database, hub: NotificationHub, settings: Settings, tmp_path: Path, fake: FakeOpenAI) -> Container:
    return paid_container(db, hub, settings, tmp_path, fake, STUDIO_KEY)


def _money(amount: str) -> dict:
    return {"amount": amount, "currency": USD}


def _paint(account: Account, **fields: object) -> dict:
    response = account.client.post(f"{API}/generations", json={**PAINT, **fields})
    assert response.status_code == 201, response.text
    return response.json()


def _spend_of(admin: Account, account: Account) -> dict:
    items = admin.client.get(f"{API}/admin/spend").json()["items"]
    return {item["user_id"]: item for item in items}[account.id]


def test_costs_add_up_for_the_session_the_user_and_the_admin(accounts, container: Container) -> None:
    admin, alice, bob = accounts.make(admin=True), accounts.make(), accounts.make()
    session_id = alice.client.post(f"{API}/sessions", json={"title": "kites"}).json()["id"]
    for _ in range(3):
        _paint(alice, session_id=session_id)
    assert alice.client.post(f"{API}/generations", json={**FREE, "session_id": session_id}).status_code == 201
    run_queue(container)

    detail = alice.client.get(f"{API}/sessions/{session_id}").json()
    paid = [g for g in detail["generations"] if g["provider"] == "openai"]
    assert [g["cost"] for g in paid] == [_money(PAINT_COST)] * 3
    assert all(g["usage"]["output_tokens"] == 272 for g in paid)
    three = str(Decimal(PAINT_COST) * 3)
    assert detail["total_cost"] == _money(three)
    usage = alice.client.get(f"{API}/me/usage").json()
    for period in ("today", "month"):
        assert usage[period]["spend"] == _money(three) and usage[period]["spend_own_keys"] == _money("0.000000")
    assert usage["budget"]["monthly"] is None and usage["budget"]["left"] is None
    assert usage["budget"]["spent"] == _money(three)
    assert bob.client.get(f"{API}/me/usage").json()["month"]["spend"] == _money("0.000000")
    assert _spend_of(admin, alice)["spent"] == _money(three) and _spend_of(admin, bob)["spent"] == _money("0.000000")
    budget = admin.client.get(f"{API}/admin/budget").json()
    assert budget["monthly_budget"] is None and budget["spent"] == _money(three) and budget["left"] is None


def test_a_users_budget_stops_their_paid_generations_only(accounts, container: Container, fake) -> None:
    admin, alice, bob = accounts.make(admin=True), accounts.make(), accounts.make()
    changed = admin.client.patch(f"{API}/admin/users/{alice.id}", json={"monthly_budget": "0.02"})
    assert changed.status_code == 200 and Decimal(changed.json()["monthly_budget"]) == Decimal("0.02")
    _paint(alice)
    run_queue(container)
    _paint(alice)  # 0.01113 spent: still under 0.02
    run_queue(container)

    refused = alice.client.post(f"{API}/generations", json=PAINT)

    body = assert_problem(refused, 429, "budget_exceeded")
    assert "0.02 USD" in body["detail"] and int(refused.headers["retry-after"]) >= 1
    assert len(alice.client.get(f"{API}/generations").json()["items"]) == 2
    usage = alice.client.get(f"{API}/me/usage").json()["budget"]
    assert usage["monthly"] == _money("0.020000") and usage["left"] == _money("0.000000")
    assert usage["spent"] == _money(str(Decimal(PAINT_COST) * 2))
    assert _spend_of(admin, alice)["monthly_budget"] == _money("0.020000")
    # Free providers still serve her, others' budgets are their own, and her own key is hers to spend.
    assert alice.client.post(f"{API}/generations", json=FREE).status_code == 201
    _paint(bob)
    assert admin.client.patch(f"{API}/admin/provider-keys/openai", json={"allow_user_keys": True}).status_code == 200
    own = "sk-alice-own-key-9999"
    fake.other_keys.add(own)
    assert alice.client.put(f"{API}/me/provider-keys/openai", json={"api_key": own}).status_code == 200
    mine = _paint(alice)
    run_queue(container)
    done = alice.client.get(f"{API}/generations/{mine['id']}").json()
    assert done["status"] == "succeeded" and done["own_key"] is True
    assert alice.client.get(f"{API}/me/usage").json()["month"]["spend_own_keys"] == _money(PAINT_COST)
    # Lifting the budget lets the studio's key serve her again.
    assert admin.client.patch(f"{API}/admin/users/{alice.id}", json={"monthly_budget": None}).status_code == 200
    assert alice.client.delete(f"{API}/me/provider-keys/openai").status_code == 204
    _paint(alice)


def test_the_studio_budget_stops_everyones_paid_generations(accounts, container: Container) -> None:
    admin, alice, bob = accounts.make(admin=True), accounts.make(), accounts.make()
    put = admin.client.put(f"{API}/admin/budget", json={"monthly_budget": "0.01"})
    assert put.status_code == 200 and put.json()["monthly_budget"] == _money("0.010000")
    _paint(alice)
    run_queue(container)

    assert_problem(bob.client.post(f"{API}/generations", json=PAINT), 429, "budget_exceeded")
    assert_problem(alice.client.post(f"{API}/generations", json=PAINT), 429, "budget_exceeded")
    assert bob.client.post(f"{API}/generations", json=FREE).status_code == 201
    state = admin.client.get(f"{API}/admin/budget").json()
    assert state["spent"] == _money(PAINT_COST) and state["left"] == _money("0.000000")
    assert admin.client.put(f"{API}/admin/budget", json={"monthly_budget": None}).json()["monthly_budget"] is None
    _paint(bob)


@pytest.mark.parametrize("amount", ["-1", "1e3", "1234567", "0.0000001", "", " 5", "NaN", 12.5, True, ["1"]])
def test_budgets_take_decimal_strings_only(accounts, container: Container, amount: object) -> None:
    admin, alice = accounts.make(admin=True), accounts.make()
    for response in (
        admin.client.put(f"{API}/admin/budget", json={"monthly_budget": amount}),
        admin.client.patch(f"{API}/admin/users/{alice.id}", json={"monthly_budget": amount}),
    ):
        assert_problem(response, 422) and error_fields(response) == {"monthly_budget"}
    assert admin.client.get(f"{API}/admin/budget").json()["monthly_budget"] is None
    assert _spend_of(admin, alice)["monthly_budget"] is None


def test_only_administrators_see_spend_and_set_budgets(accounts, container: Container) -> None:
    alice = accounts.make()
    for response in (
        alice.client.get(f"{API}/admin/spend"),
        alice.client.get(f"{API}/admin/budget"),
        alice.client.put(f"{API}/admin/budget", json={"monthly_budget": "5"}),
        alice.client.patch(f"{API}/admin/users/{alice.id}", json={"monthly_budget": "5"}),
    ):
        assert_problem(response, 403, "admin_required")
    assert alice.client.get(f"{API}/me/usage").json()["budget"]["monthly"] is None
