"""Live previews in the studio: a turn that asks for them gets real intermediate pictures on its event stream,
progress says which image each step belongs to, and the pictures are served to their owner only."""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy import select

from imagestudio.models import GenerationEvent
from imagestudio.models.limits import PREVIEW_NUMBER_MAX
from tests.api.helpers import API, assert_problem, browser_client, run_queue


def _progress_payloads(container, generation_id: str) -> list[dict]:
    with container.db.reading() as db:
        rows = db.scalars(
            select(GenerationEvent).where(GenerationEvent.type == "progress").order_by(GenerationEvent.sequence)
        ).all()
        return [row.payload for row in rows if str(row.generation_id) == generation_id]


def _turn_with_previews(client, **params) -> str:
    session_id = client.post(f"{API}/sessions", json={}).json()["id"]
    response = client.post(
        f"{API}/sessions/{session_id}/messages",
        json={
            "content": "a harbour at night",
            "mode": "fresh",
            "width": 96,
            "height": 64,
            "num_images": 2,
            "params": {"steps": 6, "extra": {"partial_images": 2}, **params},
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["generation_id"]


def test_a_turn_asking_for_previews_shows_each_image_as_it_is_made(accounts, container) -> None:
    owner = accounts.make()
    generation_id = _turn_with_previews(owner.client)
    run_queue(container, progress_interval=0)  # every step an event
    assert owner.client.get(f"{API}/generations/{generation_id}").json()["status"] == "succeeded"

    payloads = _progress_payloads(container, generation_id)
    previews = [payload["preview"] for payload in payloads if "preview" in payload]
    # Two per image, numbered in the order they were made, the first image's before the second's.
    assert [preview["index"] for preview in previews] == [0, 1, 2, 3]
    assert [preview["batch_index"] for preview in previews] == [0, 0, 1, 1]
    # The built-in renderer makes one image after the other: every step says which image it belongs to.
    steps = [payload for payload in payloads if "preview" not in payload]
    # Only the last step may come without it, when it rides along with the result.
    assert steps and all("batch_index" in payload for payload in steps if payload["step"] < payload["total"]), steps
    steps = [payload for payload in steps if "batch_index" in payload]
    assert steps, payloads
    share = 12 // 2  # 6 steps for each of the 2 images
    assert all(payload["batch_index"] == (payload["step"] - 1) // share for payload in steps), steps
    images = []
    for preview in previews:
        response = owner.client.get(f"{API}/generations/{generation_id}/previews/{preview['index']}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"
        assert "no-cache" in response.headers["cache-control"]
        image = Image.open(io.BytesIO(response.content))
        assert image.size == (preview["width"], preview["height"]) == (96, 64)
        images.append(image.tobytes())
    # Real intermediate renders, not one picture four times.
    assert len(set(images)) == 4


def test_previews_are_refused_to_others_and_outside_their_range(accounts, container, app) -> None:
    owner, stranger = accounts.make(), accounts.make()
    generation_id = _turn_with_previews(owner.client)
    run_queue(container)
    url = f"{API}/generations/{generation_id}/previews"
    assert owner.client.get(f"{url}/0").status_code == 200

    assert_problem(stranger.client.get(f"{url}/0"), 404, "not_found")
    assert_problem(browser_client(app).get(f"{url}/0"), 401)
    # A number no preview has (within the range), and numbers outside it or not numbers at all.
    assert_problem(owner.client.get(f"{url}/{PREVIEW_NUMBER_MAX}"), 404, "not_found")
    for bad in (str(PREVIEW_NUMBER_MAX + 1), "-1", "abc", "1.5", "0x1", "9" * 40):
        assert_problem(owner.client.get(f"{url}/{bad}"), 422)
    assert_problem(owner.client.get(f"{API}/generations/not-a-uuid/previews/0"), 422)


def test_without_previews_asked_none_are_stored_or_served(accounts, container) -> None:
    owner = accounts.make()
    session_id = owner.client.post(f"{API}/sessions", json={}).json()["id"]
    turn = owner.client.post(
        f"{API}/sessions/{session_id}/messages",
        json={"content": "calm", "mode": "fresh", "width": 64, "height": 64, "params": {"steps": 6}},
    ).json()
    run_queue(container)
    assert not [payload for payload in _progress_payloads(container, turn["generation_id"]) if "preview" in payload]
    assert_problem(owner.client.get(f"{API}/generations/{turn['generation_id']}/previews/0"), 404, "not_found")
