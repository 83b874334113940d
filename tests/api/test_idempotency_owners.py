"""An Idempotency-Key belongs to the user who sent it: another user's identical key is a new request.

If the lookup ignored the owner, a second user reusing a key would be answered with the first user's
generation (a leak), or refused with 409 for a request they never made.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from imagestudio.models import Generation
from imagestudio.models.limits import IDEMPOTENCY_KEY_MAX_LENGTH
from tests.api.helpers import API, assert_problem

SMALL = {"width": 64, "height": 64}


def _post(client, key: str, **body):
    return client.post(f"{API}/generations", json={**SMALL, **body}, headers={"Idempotency-Key": key})


def _owners(container) -> dict[str, str]:
    with container.db.reading() as db:
        return {str(row.id): str(row.owner_id) for row in db.scalars(select(Generation))}


def test_the_same_key_and_request_from_two_users_makes_two_generations(accounts, container) -> None:
    alice, bob = accounts.make(), accounts.make()
    first = _post(alice.client, "shared-key", prompt="a lighthouse")
    assert first.status_code == 201, first.text
    second = _post(bob.client, "shared-key", prompt="a lighthouse")
    assert second.status_code == 201, second.text
    assert second.json()["id"] != first.json()["id"]
    assert _owners(container) == {first.json()["id"]: alice.id, second.json()["id"]: bob.id}
    # Each user's replay answers their own generation.
    assert _post(alice.client, "shared-key", prompt="a lighthouse").json()["id"] == first.json()["id"]
    replay = _post(bob.client, "shared-key", prompt="a lighthouse")
    assert (replay.status_code, replay.json()["id"]) == (200, second.json()["id"])
    assert_problem(bob.client.get(f"{API}/generations/{first.json()['id']}"), 404, "not_found")


def test_another_users_key_never_conflicts_with_a_different_request(accounts, container) -> None:
    alice, bob = accounts.make(), accounts.make()
    assert _post(alice.client, "order-1", prompt="a red kite").status_code == 201
    answer = _post(bob.client, "order-1", prompt="a blue boat")
    assert answer.status_code == 201, answer.text
    assert answer.json()["prompt"] == "a blue boat"
    assert sorted(_owners(container).values()) == sorted([alice.id, bob.id])
    # Within one user the key still guards against a different request.
    assert_problem(_post(bob.client, "order-1", prompt="a green car"), 409, "idempotency_key_reused")


def test_a_retry_key_used_by_another_user_retries_their_own_generation(accounts, container) -> None:
    alice, bob = accounts.make(), accounts.make()
    ids = {}
    for account in (alice, bob):
        created = account.client.post(f"{API}/generations", json={**SMALL, "prompt": "a kite"}).json()
        assert account.client.post(f"{API}/generations/{created['id']}/cancel").json()["status"] == "canceled"
        ids[account.id] = created["id"]
    headers = {"Idempotency-Key": "retry-shared"}
    alice_retry = alice.client.post(f"{API}/generations/{ids[alice.id]}/retry", headers=headers)
    assert alice_retry.status_code == 201, alice_retry.text
    bob_retry = bob.client.post(f"{API}/generations/{ids[bob.id]}/retry", headers=headers)
    assert bob_retry.status_code == 201, bob_retry.text
    assert bob_retry.json()["retried_from_id"] == ids[bob.id]
    owners = _owners(container)
    assert owners[alice_retry.json()["id"]] == alice.id and owners[bob_retry.json()["id"]] == bob.id
    assert uuid.UUID(bob_retry.json()["id"]) != uuid.UUID(alice_retry.json()["id"])


def test_idempotency_keys_are_1_to_the_maximum_printable_characters(accounts, container) -> None:
    alice = accounts.make()
    longest = "k" * IDEMPOTENCY_KEY_MAX_LENGTH
    for key in ("1", longest):
        assert _post(alice.client, key, prompt=f"a key of {len(key)}").status_code == 201
    detail = f"The Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable characters."
    for key in ("", "tab\there"):
        body = assert_problem(_post(alice.client, key, prompt="refused"), 400, "invalid_idempotency_key")
        assert body["detail"] == detail, repr(key)
    # The header's declared length is checked with the request's other fields.
    assert_problem(_post(alice.client, longest + "k", prompt="refused"), 422, "validation_failed")
    # The OpenAI-compatible API declares no length: the same rule answers there, in OpenAI's shape.
    too_long = alice.bearer().post(
        "/v1/images/generations", json={"prompt": "refused"}, headers={"Idempotency-Key": longest + "k"}
    )
    assert too_long.status_code == 400, too_long.text
    assert too_long.json()["error"]["code"] == "invalid_idempotency_key"
    assert too_long.json()["error"]["message"] == detail
    assert len(_owners(container)) == 2
