"""Sessions: create, list (keyset by activity, search, filters), rename, archive, delete, detail."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from imagestudio.models import Asset, ChatSession, Generation, GenerationEvent, Message
from tests.api.helpers import API, assert_problem, error_fields, run_queue, upload


def _session(client, **body) -> dict:
    response = client.post(f"{API}/sessions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _turn(client, session_id: str, content: str, **body) -> dict:
    body.setdefault("width", 64)
    body.setdefault("height", 64)
    response = client.post(f"{API}/sessions/{session_id}/messages", json={"content": content, **body})
    assert response.status_code == 201, response.text
    return response.json()


def _titles(client, **params) -> list[str]:
    response = client.get(f"{API}/sessions", params=params)
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


def test_the_first_prompt_names_an_untitled_session(accounts) -> None:
    client = accounts.make().client
    untitled = _session(client)
    assert untitled["title"] == "New session" and untitled["archived"] is False
    named = _session(client, title="My fox series")
    _turn(client, untitled["id"], "  A watercolour fox\nin the snow  ", mode="fresh")
    _turn(client, untitled["id"], "now at night", mode="fresh")
    _turn(client, named["id"], "a fox", mode="fresh")
    assert set(_titles(client)) == {"A watercolour fox in the snow", "My fox series"}


def test_lists_page_by_last_activity_newest_first(accounts) -> None:
    client = accounts.make().client
    first, second, third = (_session(client, title=name) for name in ("first", "second", "third"))
    assert _titles(client) == ["third", "second", "first"]
    _turn(client, first["id"], "activity moves a session to the top", mode="fresh")

    page = client.get(f"{API}/sessions", params={"limit": 2}).json()
    assert [item["title"] for item in page["items"]] == ["first", "third"]
    rest = client.get(f"{API}/sessions", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [item["title"] for item in rest["items"]] == ["second"] and rest["next_cursor"] is None
    assert rest["items"][0]["id"] == second["id"] and page["items"][1]["id"] == third["id"]

    for cursor in ("not-a-cursor", "MjAyNnxub3BlPw", "%%%"):
        response = client.get(f"{API}/sessions", params={"cursor": cursor})
        assert_problem(response, 422, "invalid_cursor")
        assert error_fields(response) == {"cursor"}
    assert_problem(client.get(f"{API}/sessions", params={"limit": 0}), 422, "validation_failed")


def test_search_matches_titles_and_prompts_in_any_case_with_wildcards_taken_literally(accounts) -> None:
    client = accounts.make().client
    _session(client, title="100% Orange")
    _session(client, title="100 dollars")
    prompted = _session(client, title="untitled work")
    _turn(client, prompted["id"], "A LIGHTHOUSE under_storm clouds", mode="fresh")
    assert _titles(client, q="100%") == ["100% Orange"]
    assert _titles(client, q="orange") == ["100% Orange"]
    assert _titles(client, q="lighthouse") == ["untitled work"]
    assert _titles(client, q="under_storm") == ["untitled work"]
    assert _titles(client, q="under%storm") == []
    assert _titles(client, q="nothing like this") == []


def test_archive_rename_and_move_between_projects(accounts) -> None:
    owner, other = accounts.make(), accounts.make()
    client = owner.client
    project = client.post(f"{API}/projects", json={"name": "Birds"}).json()
    foreign_project = other.client.post(f"{API}/projects", json={"name": "Not yours"}).json()
    session = _session(client, title="gulls")
    path = f"{API}/sessions/{session['id']}"

    renamed = client.patch(path, json={"title": "Seagulls", "project_id": project["id"]}).json()
    assert renamed["title"] == "Seagulls" and renamed["project_id"] == project["id"]
    assert renamed["updated_at"] == session["updated_at"], "renaming is not activity"
    assert _titles(client, project_id=project["id"]) == ["Seagulls"]

    archived = client.patch(path, json={"archived": True}).json()
    assert archived["archived"] is True
    assert _titles(client) == [] and _titles(client, archived="true") == ["Seagulls"]
    assert client.patch(path, json={"archived": False, "project_id": None}).json()["project_id"] is None
    assert _titles(client) == ["Seagulls"]

    for body, field in (
        ({"title": None}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"project_id": foreign_project["id"]}, "project_id"),
        ({"owner_id": other.id}, "owner_id"),
        ({"archived": "sometimes"}, "archived"),
    ):
        response = client.patch(path, json=body)
        assert_problem(response, 422)
        assert field in error_fields(response), body
    assert client.get(path).json()["title"] == "Seagulls"
    assert_problem(client.post(f"{API}/sessions", json={"project_id": foreign_project["id"]}), 422)
    assert_problem(client.patch(f"{API}/sessions/{uuid.uuid4()}", json={"title": "x"}), 404, "not_found")


def test_detail_has_messages_generations_outputs_and_a_branching_lineage(accounts, container) -> None:
    client = accounts.make().client
    session = _session(client)
    reference = upload(client, purpose="reference").json()
    first = _turn(client, session["id"], "a red barn", mode="fresh", attachment_ids=[reference["id"]])
    run_queue(container)
    source = client.get(f"{API}/generations/{first['generation_id']}").json()["outputs"][0]
    second = _turn(client, session["id"], "in winter")  # iterates on the latest output
    run_queue(container)
    branch = _turn(client, session["id"], "in autumn", source_asset_id=source["id"])  # the same parent again
    run_queue(container)
    third = _turn(client, session["id"], "with snow falling")  # on the latest: autumn's output

    detail = client.get(f"{API}/sessions/{session['id']}").json()
    assert detail["image_count"] == 3 and detail["message_count"] == 8
    # The cover is the newest image: autumn's (the step with snow is still queued).
    autumn = client.get(f"{API}/generations/{branch['generation_id']}").json()["outputs"][0]
    assert detail["thumbnail_url"] == f"{API}/assets/{autumn['id']}/thumbnail"
    user_turn, answer = detail["messages"][:2]
    assert user_turn["role"] == "user" and [a["id"] for a in user_turn["attachments"]] == [reference["id"]]
    assert answer["role"] == "assistant" and answer["generation_id"] == first["generation_id"]
    assert answer["status"] == "succeeded" and answer["parent_message_id"] == user_turn["id"]

    generations = {g["id"]: g for g in detail["generations"]}
    made = generations[first["generation_id"]]
    assert made["outputs"][0]["content_url"] == f"{API}/assets/{source['id']}/content"
    assert made["inputs"] == [{"asset_id": reference["id"], "role": "reference"}]
    assert generations[second["generation_id"]]["type"] == "img2img"
    assert generations[second["generation_id"]]["inputs"] == [{"asset_id": source["id"], "role": "init"}]
    assert generations[third["generation_id"]]["parent_generation_id"] == branch["generation_id"]

    [root] = detail["lineage"]
    assert (root["generation_id"], root["step"]) == (first["generation_id"], 1)
    children = {child["generation_id"]: child for child in root["children"]}
    assert [children[g["generation_id"]]["step"] for g in (second, branch)] == [2, 3]
    assert children[branch["generation_id"]]["children"] == [
        {
            "generation_id": third["generation_id"],
            "step": 4,
            "children": [],
            "parent_generation_id": branch["generation_id"],
            "status": "queued",
            "thumbnail_asset_id": None,
        }
    ]
    assert children[branch["generation_id"]]["thumbnail_asset_id"] == autumn["id"]


def test_an_upload_used_by_two_sessions_outlives_the_first_one_deleted(accounts, container) -> None:
    client = accounts.make().client
    first, second = _session(client), _session(client)
    shared = upload(client, purpose="init").json()
    _turn(client, first["id"], "a teapot", mode="iterate", source_asset_id=shared["id"])
    reuse = _turn(client, second["id"], "a kettle", mode="iterate", source_asset_id=shared["id"])
    run_queue(container)
    with container.db.reading() as db:
        asset = db.get(Asset, uuid.UUID(shared["id"]))
        assert asset is not None and asset.session_id == uuid.UUID(first["id"])  # the first use adopted it
        keys = [asset.storage_key, asset.thumbnail_key]
    assert all(key and container.storage.exists(key) for key in keys)

    assert client.delete(f"{API}/sessions/{first['id']}").status_code == 204
    # The second session's generation keeps its input, row and file.
    generation = client.get(f"{API}/generations/{reuse['generation_id']}").json()
    assert [item["asset_id"] for item in generation["inputs"]] == [shared["id"]], generation
    assert client.get(f"{API}/assets/{shared['id']}/content").status_code == 200
    assert all(container.storage.exists(key) for key in keys)
    with container.db.reading() as db:
        assert db.get(Asset, uuid.UUID(shared["id"])).session_id == uuid.UUID(second["id"])

    # Once nothing references it any more, it goes with the last session that used it.
    assert client.delete(f"{API}/sessions/{second['id']}").status_code == 204
    assert_problem(client.get(f"{API}/assets/{shared['id']}"), 404, "not_found")
    assert not any(container.storage.exists(key) for key in keys)


def test_delete_removes_rows_and_stored_files_of_that_session_only(accounts, container) -> None:
    client = accounts.make().client
    doomed, kept = _session(client), _session(client)
    attached = upload(client, purpose="reference").json()
    _turn(client, doomed["id"], "a teapot", mode="fresh", attachment_ids=[attached["id"]])
    _turn(client, kept["id"], "a kettle", mode="fresh")
    run_queue(container)
    with container.db.reading() as db:
        outputs = db.scalars(select(Asset.id).where(Asset.kind == "output")).all()
    for output_id in outputs:  # outputs' thumbnails are made by their first request
        assert client.get(f"{API}/assets/{output_id}/thumbnail").status_code == 200
    with container.db.reading() as db:
        doomed_keys = [
            key
            for row in db.execute(
                select(Asset.storage_key, Asset.thumbnail_key).where(Asset.session_id == uuid.UUID(doomed["id"]))
            )
            for key in row
        ]
        kept_keys = [key for row in db.execute(select(Asset.storage_key, Asset.thumbnail_key)) for key in row]
    kept_keys = sorted(set(kept_keys) - set(doomed_keys))
    assert len(doomed_keys) == 4 and len(kept_keys) == 2  # the output, the upload, and their thumbnails
    assert all(container.storage.exists(key) for key in doomed_keys + kept_keys)

    assert client.delete(f"{API}/sessions/{doomed['id']}").status_code == 204
    assert_problem(client.get(f"{API}/sessions/{doomed['id']}"), 404, "not_found")
    assert_problem(client.delete(f"{API}/sessions/{doomed['id']}"), 404, "not_found")
    assert not any(container.storage.exists(key) for key in doomed_keys)
    assert all(container.storage.exists(key) for key in kept_keys)
    with container.db.reading() as db:
        sid = uuid.UUID(doomed["id"])
        for model in (Message, Generation, Asset, GenerationEvent):
            assert db.scalar(select(func.count()).select_from(model).where(model.session_id == sid)) == 0
        assert db.scalar(select(func.count()).select_from(ChatSession)) == 1
    assert _titles(client) == ["a kettle"]
