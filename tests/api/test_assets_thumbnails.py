"""Thumbnails made on first request: a generation's worker stores only its images; the first
GET of an output's thumbnail makes the WebP, stores it and records its key; later GETs serve the
stored one; two first requests at once agree; deletion removes it, even when it races the first."""

from __future__ import annotations

import io
import threading
import uuid

import pytest
from PIL import Image
from sqlalchemy import update

from imagestudio.assets.images import make_thumbnail
from imagestudio.assets.thumbnails import thumbnail_bytes
from imagestudio.models import Asset
from imagestudio.storage.base import ObjectNotFound
from imagestudio.storage.keys import thumbnail_key
from tests.api.helpers import API, assert_problem, run_queue


def _one_output(client, container, size: int = 512) -> dict:
    generation = client.post(f"{API}/generations", json={"prompt": "a tin robot", "width": size, "height": size})
    run_queue(container)
    [output] = client.get(f"{API}/generations/{generation.json()['id']}").json()["outputs"]
    return output


def _row(container, asset_id: str) -> Asset:
    with container.db.reading() as db:
        row = db.get(Asset, uuid.UUID(asset_id))
        assert row is not None
        return row


def test_the_first_request_makes_and_keeps_the_thumbnail(accounts, container) -> None:
    client = accounts.make().client
    output = _one_output(client, container)
    row = _row(container, output["id"])
    expected_key = thumbnail_key(row.generation_id, 1, 0)
    # The worker stored the image only.
    assert row.thumbnail_key is None and not container.storage.exists(expected_key)

    first = client.get(output["thumbnail_url"])
    assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
    assert first.headers["etag"] == f'"thumb-{row.sha256}"' and "immutable" in first.headers["cache-control"]
    with Image.open(io.BytesIO(first.content)) as thumbnail:
        assert thumbnail.format == "WEBP" and thumbnail.size == (256, 256)
    assert _row(container, output["id"]).thumbnail_key == expected_key
    assert container.storage.get(expected_key) == first.content

    # Later requests serve the stored object, not a fresh one.
    marker = make_thumbnail(Image.new("RGB", (8, 8), "red"))
    container.storage.put(expected_key, marker, "image/webp")
    assert client.get(output["thumbnail_url"]).content == marker
    assert client.get(output["thumbnail_url"], headers={"If-None-Match": first.headers["etag"]}).status_code == 304


def test_two_first_requests_at_once_agree(accounts, container) -> None:
    client = accounts.make().client
    output = _one_output(client, container, size=64)
    row = _row(container, output["id"])
    results: list[bytes | None] = [None, None]
    start = threading.Barrier(2)

    def first(slot: int) -> None:
        start.wait()
        results[slot] = thumbnail_bytes(container.db, container.storage, row)

    threads = [threading.Thread(target=first, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    key = thumbnail_key(row.generation_id, 1, 0)
    assert results[0] == results[1] == container.storage.get(key)
    assert _row(container, output["id"]).thumbnail_key == key
    assert [name for name in container.storage.list("thumbnails/")] == [key]


def test_deleting_an_image_removes_its_thumbnail(accounts, container) -> None:
    client = accounts.make().client
    output = _one_output(client, container, size=64)
    assert client.get(output["thumbnail_url"]).status_code == 200
    key = _row(container, output["id"]).thumbnail_key
    assert key and container.storage.exists(key)
    assert client.delete(f"{API}/assets/{output['id']}").status_code == 204
    assert not container.storage.exists(key)
    assert_problem(client.get(output["thumbnail_url"]), 404, "not_found")


def test_a_first_request_that_loses_to_a_deletion_leaves_no_thumbnail(accounts, container) -> None:
    client = accounts.make().client
    output = _one_output(client, container, size=64)
    stale = _row(container, output["id"])  # read by the request before the deletion commits
    with container.db.writing() as db:
        db.execute(update(Asset).where(Asset.id == stale.id).values(deleted_at=stale.created_at))
    with pytest.raises(ObjectNotFound):
        thumbnail_bytes(container.db, container.storage, stale)
    assert list(container.storage.list("thumbnails/")) == []
    assert _row(container, output["id"]).thumbnail_key is None


def test_a_missing_thumbnail_object_is_made_again(accounts, container) -> None:
    client = accounts.make().client
    output = _one_output(client, container, size=64)
    made = client.get(output["thumbnail_url"]).content
    key = _row(container, output["id"]).thumbnail_key
    container.storage.delete(key)
    again = client.get(output["thumbnail_url"])
    assert again.status_code == 200 and again.content == made and container.storage.get(key) == made
