"""Curating: deleting one image or a finished step, stars, covers, the gallery and zips of a selection."""

from __future__ import annotations

import io
import uuid
import zipfile

from sqlalchemy import select

from imagestudio.models import Asset, ChatSession, Generation, Message
from tests.api.helpers import API, assert_problem, error_fields, run_queue


def _session(client, title: str = "A quiet harbour") -> dict:
    response = client.post(f"{API}/sessions", json={"title": title})
    assert response.status_code == 201, response.text
    return response.json()


def _turn(client, session_id: str, content: str, **body) -> dict:
    body = {"width": 64, "height": 64, "mode": "fresh", **body}
    response = client.post(f"{API}/sessions/{session_id}/messages", json={"content": content, **body})
    assert response.status_code == 201, response.text
    return response.json()


def _detail(client, session_id: str) -> dict:
    response = client.get(f"{API}/sessions/{session_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _outputs(detail: dict, step: int) -> list[dict]:
    return sorted(detail["generations"][step - 1]["outputs"], key=lambda output: output["batch_index"])


def _stored_keys(container, asset_id: str) -> list[str]:
    with container.db.read() as db:
        asset = db.get(Asset, uuid.UUID(asset_id))
        assert asset is not None
        return [key for key in (asset.storage_key, asset.thumbnail_key) if key]


def test_deleting_one_image_keeps_counts_cover_and_storage_right(accounts, container) -> None:
    owner, other = accounts.make(), accounts.make()
    client = owner.client
    chat = _session(client)
    _turn(client, chat["id"], "a harbour at dawn", num_images=3)
    run_queue(container)
    detail = _detail(client, chat["id"])
    first, second, third = _outputs(detail, 1)
    assert (detail["image_count"], detail["thumbnail_asset_id"]) == (3, third["id"])
    keys = _stored_keys(container, third["id"])
    assert all(container.storage.exists(key) for key in keys)

    assert_problem(other.client.delete(f"{API}/assets/{third['id']}"), 404, "not_found")
    assert client.delete(f"{API}/assets/{third['id']}").status_code == 204
    assert not any(container.storage.exists(key) for key in keys)
    detail = _detail(client, chat["id"])
    assert (detail["image_count"], detail["thumbnail_asset_id"]) == (2, second["id"])
    assert [output["id"] for output in _outputs(detail, 1)] == [first["id"], second["id"]]
    assert_problem(client.get(f"{API}/assets/{third['id']}/content"), 404, "not_found")
    assert_problem(client.delete(f"{API}/assets/{third['id']}"), 404, "not_found")
    listed = client.get(f"{API}/sessions").json()["items"][0]
    assert (listed["image_count"], listed["thumbnail_asset_id"]) == (2, second["id"])
    assert third["id"] not in {item["id"] for item in client.get(f"{API}/assets").json()["items"]}


def test_an_image_a_waiting_generation_reads_cannot_be_deleted(accounts, container) -> None:
    client = accounts.make().client
    chat = _session(client)
    _turn(client, chat["id"], "a boat")
    run_queue(container)
    source = _outputs(_detail(client, chat["id"]), 1)[0]
    _turn(client, chat["id"], "make it red", mode="iterate", source_asset_id=source["id"])
    assert_problem(client.delete(f"{API}/assets/{source['id']}"), 409, "asset_in_use")
    assert client.get(f"{API}/assets/{source['id']}").status_code == 200
    run_queue(container)
    assert client.delete(f"{API}/assets/{source['id']}").status_code == 204
    # The step made from it still knows it had a source, whose content is gone.
    child = _detail(client, chat["id"])["generations"][1]
    assert [item["asset_id"] for item in child["inputs"]] == [source["id"]]


def test_deleting_a_finished_step_takes_its_turn_and_files_and_frees_its_children(accounts, container) -> None:
    owner, other = accounts.make(), accounts.make()
    client = owner.client
    chat = _session(client)
    _turn(client, chat["id"], "a lighthouse", num_images=2)
    run_queue(container)
    parent_outputs = _outputs(_detail(client, chat["id"]), 1)
    _turn(client, chat["id"], "at night", mode="iterate", source_asset_id=parent_outputs[0]["id"])
    queued = _turn(client, chat["id"], "in fog", mode="fresh")
    assert_problem(client.delete(f"{API}/generations/{queued['generation_id']}"), 409, "invalid_generation_state")
    run_queue(container)
    detail = _detail(client, chat["id"])
    parent, child, _ = detail["generations"]
    assert child["parent_generation_id"] == parent["id"]
    assert (detail["image_count"], detail["message_count"]) == (4, 6)
    keys = [key for output in parent_outputs for key in _stored_keys(container, output["id"])]

    assert_problem(other.client.delete(f"{API}/generations/{parent['id']}"), 404, "not_found")
    assert client.delete(f"{API}/generations/{parent['id']}").status_code == 204
    assert not any(container.storage.exists(key) for key in keys)
    detail = _detail(client, chat["id"])
    assert [g["id"] for g in detail["generations"]] == [child["id"], queued["generation_id"]]
    assert detail["generations"][0]["parent_generation_id"] is None
    assert [node["generation_id"] for node in detail["lineage"]] == [child["id"], queued["generation_id"]]
    assert [node["step"] for node in detail["lineage"]] == [1, 2]
    assert (detail["image_count"], detail["message_count"]) == (2, 4)
    assert "a lighthouse" not in [message["content"] for message in detail["messages"]]
    # The cover was the output recorded last, of one of the steps left (two workers may record in either order).
    left = {output["id"] for generation in detail["generations"] for output in generation["outputs"]}
    assert detail["thumbnail_asset_id"] in left
    with container.db.read() as db:
        assert db.scalar(select(Generation).where(Generation.id == uuid.UUID(parent["id"]))) is None
        counted = db.scalars(select(Message).where(Message.session_id == uuid.UUID(chat["id"]))).all()
        assert len(counted) == 4


def test_the_cover_is_the_newest_image_until_one_is_picked(accounts, container) -> None:
    owner, other = accounts.make(), accounts.make()
    client = owner.client
    chat = _session(client)
    elsewhere = _session(client, "elsewhere")
    _turn(client, chat["id"], "a kite", num_images=2)
    _turn(client, elsewhere["id"], "a stone")
    run_queue(container)
    first, second = _outputs(_detail(client, chat["id"]), 1)
    foreign = _outputs(_detail(client, elsewhere["id"]), 1)[0]
    path = f"{API}/sessions/{chat['id']}"
    assert client.get(path).json()["thumbnail_asset_id"] == second["id"]

    picked = client.patch(path, json={"thumbnail_asset_id": first["id"]})
    assert picked.status_code == 200, picked.text
    assert (picked.json()["thumbnail_asset_id"], picked.json()["thumbnail_is_custom"]) == (first["id"], True)
    _turn(client, chat["id"], "another kite")
    run_queue(container)
    assert client.get(path).json()["thumbnail_asset_id"] == first["id"]

    for bad in (foreign["id"], str(uuid.uuid4()), "not-a-uuid", 7):
        response = client.patch(path, json={"thumbnail_asset_id": bad})
        assert_problem(response, 422)
        assert error_fields(response) == {"thumbnail_asset_id"}
    assert_problem(other.client.patch(path, json={"thumbnail_asset_id": first["id"]}), 404, "not_found")
    assert client.get(path).json()["thumbnail_asset_id"] == first["id"]

    reset = client.patch(path, json={"thumbnail_asset_id": None}).json()
    newest = _outputs(client.get(path).json(), 2)[0]
    assert client.get(f"{API}/assets", params={"session_id": chat["id"]}).json()["items"][0]["id"] == newest["id"]
    assert (reset["thumbnail_asset_id"], reset["thumbnail_is_custom"]) == (newest["id"], False)


def test_stars_and_the_gallery_filters(accounts, container) -> None:
    owner, other = accounts.make(), accounts.make()
    client = owner.client
    harbour, forest = _session(client, "Harbour"), _session(client, "Forest")
    # One at a time, so the images are made in this order.
    _turn(client, harbour["id"], "a red boat", num_images=2, width=64, height=96)
    run_queue(container)
    _turn(client, forest["id"], "a fern_100%", params={"seed": 4242})
    run_queue(container)
    _turn(other.client, _session(other.client)["id"], "a red boat of someone else")
    run_queue(container)
    boats = _outputs(_detail(client, harbour["id"]), 1)
    fern = _outputs(_detail(client, forest["id"]), 1)[0]

    def ids(**params) -> list[str]:
        response = client.get(f"{API}/assets", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert ids() == [fern["id"], boats[1]["id"], boats[0]["id"]]
    item = client.get(f"{API}/assets").json()["items"][1]
    assert (item["prompt"], item["provider"], item["session_title"], item["step"]) == (
        "a red boat",
        "builtin",
        "Harbour",
        1,
    )
    assert item["download_name"] == "harbour-step-1-2.png" and item["starred_at"] is None
    assert ids(q="RED") == [boats[1]["id"], boats[0]["id"]]
    assert ids(q="_100%") == [fern["id"]] and ids(q="1%0") == []
    assert ids(seed=4242) == [fern["id"]]
    assert ids(width=64, height=96) == [boats[1]["id"], boats[0]["id"]]
    assert ids(provider="builtin") == ids() and ids(provider="openai") == []
    assert ids(session_id=forest["id"]) == [fern["id"]]
    assert ids(created_after="2000-01-01T00:00:00Z", created_before="2000-01-02T00:00:00Z") == []

    starred = client.patch(f"{API}/assets/{boats[0]['id']}", json={"starred": True})
    assert starred.status_code == 200 and starred.json()["starred_at"] is not None
    assert ids(starred="true") == [boats[0]["id"]]
    assert ids(starred="false") == [fern["id"], boats[1]["id"]]
    assert client.patch(f"{API}/assets/{boats[0]['id']}", json={"starred": False}).json()["starred_at"] is None
    assert ids(starred="true") == []
    for body in ({}, {"starred": "yes"}, {"starred": None}, {"starred": True, "other": 1}):
        assert_problem(client.patch(f"{API}/assets/{boats[0]['id']}", json=body), 422)
    assert_problem(other.client.patch(f"{API}/assets/{boats[0]['id']}", json={"starred": True}), 404, "not_found")
    assert ids(starred="true") == []

    first = client.get(f"{API}/assets", params={"limit": 2}).json()
    rest = client.get(f"{API}/assets", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [i["id"] for i in first["items"] + rest["items"]] == ids() and rest["next_cursor"] is None
    for params in ({"cursor": "nope"}, {"seed": -1}, {"width": 0}, {"starred": "maybe"}, {"limit": 0}):
        assert_problem(client.get(f"{API}/assets", params=params), 422)


def test_a_selection_downloads_as_a_zip_named_for_what_each_image_is(accounts, container) -> None:
    owner, other = accounts.make(), accounts.make()
    client = owner.client
    chat = _session(client, "Café du Port")
    _turn(client, chat["id"], "a cup", num_images=2)
    _turn(client, chat["id"], "a saucer")
    theirs = _session(other.client)
    _turn(other.client, theirs["id"], "not yours")
    run_queue(container)
    detail = _detail(client, chat["id"])
    cups, saucer = _outputs(detail, 1), _outputs(detail, 2)[0]
    foreign = _outputs(_detail(other.client, theirs["id"]), 1)[0]

    ids = [saucer["id"], cups[0]["id"], cups[1]["id"]]
    response = client.get(f"{API}/assets/archive", params={"ids": ids})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith("attachment;")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == ["cafe-du-port-step-2.png", "cafe-du-port-step-1-1.png", "cafe-du-port-step-1-2.png"]
    assert archive.read("cafe-du-port-step-2.png") == client.get(saucer["content_url"]).content
    assert archive.testzip() is None

    for params in ({"ids": [*ids, foreign["id"]]}, {"ids": ["nope"]}, {}, {"ids": [str(uuid.uuid4())] * 101}):
        assert_problem(client.get(f"{API}/assets/archive", params=params), 422)
    with container.db.read() as db:
        assert db.scalar(select(ChatSession.image_count).where(ChatSession.id == uuid.UUID(chat["id"]))) == 3


def test_downloads_carry_an_rfc_6266_utf8_name(accounts, container) -> None:
    client = accounts.make().client
    chat = _session(client)
    _turn(client, chat["id"], "a harbour")
    run_queue(container)
    output = _outputs(_detail(client, chat["id"]), 1)[0]
    response = client.get(output["content_url"], params={"download": "東京 港-step-1.png"})
    assert response.status_code == 200
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="step-1.png"')
    assert "filename*=UTF-8''%E6%9D%B1%E4%BA%AC-%E6%B8%AF-step-1.png" in disposition


def test_a_retry_takes_its_originals_place_among_the_steps(accounts, container) -> None:
    client = accounts.make().client
    chat = _session(client)
    first = _turn(client, chat["id"], "a canal")
    assert client.post(f"{API}/generations/{first['generation_id']}/cancel").json()["status"] == "canceled"
    second = _turn(client, chat["id"], "a bridge")
    retry = client.post(f"{API}/generations/{first['generation_id']}/retry")
    assert retry.status_code == 201, retry.text

    def steps() -> dict[str, int]:
        return {node["generation_id"]: node["step"] for node in _detail(client, chat["id"])["lineage"]}

    # The retry answers the first turn, so it is step 1; the replaced original, turn-less, comes after it.
    assert steps()[retry.json()["id"]] == 1
    assert client.delete(f"{API}/generations/{first['generation_id']}").status_code == 204
    assert steps() == {retry.json()["id"]: 1, second["generation_id"]: 2}
    run_queue(container)
    names = {item["download_name"] for item in client.get(f"{API}/assets").json()["items"]}
    assert names == {"a-quiet-harbour-step-1.png", "a-quiet-harbour-step-2.png"}
    turns = [m for m in _detail(client, chat["id"])["messages"] if m["role"] == "assistant"]
    assert [m["generation_id"] for m in turns] == [retry.json()["id"], second["generation_id"]]
