"""Chat turns: what each mode makes, defaults from the user's settings, attachments, bad turns."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from imagestudio.models import Generation, Message
from tests.api.helpers import API, assert_problem, error_fields, run_queue, upload


def _new_session(client) -> str:
    return client.post(f"{API}/sessions", json={}).json()["id"]


def _turn(client, session: str, **body):
    body.setdefault("width", 64)
    body.setdefault("height", 64)
    return client.post(f"{API}/sessions/{session}/messages", json=body)


def _ok(response) -> dict:
    assert response.status_code == 201, response.text
    return response.json()


def _counts(container) -> tuple[int, int]:
    with container.db.reading() as db:
        return (
            db.scalar(select(func.count()).select_from(Message)),
            db.scalar(select(func.count()).select_from(Generation)),
        )


def test_a_turn_makes_two_messages_and_their_generation(accounts) -> None:
    client = accounts.make().client
    session_id = _new_session(client)
    turn = _ok(_turn(client, session_id, content="a lighthouse at dusk", num_images=2))
    user, assistant, generation = turn["user_message"], turn["assistant_message"], turn["generation"]
    assert user["role"] == "user" and user["content"] == "a lighthouse at dusk" and user["status"] is None
    assert assistant["role"] == "assistant" and assistant["parent_message_id"] == user["id"]
    # The assistant message mirrors its generation's status from the start.
    assert assistant["status"] == generation["status"] == "queued"
    assert assistant["generation_id"] == turn["generation_id"] == generation["id"]
    assert generation["message_id"] == assistant["id"] and generation["session_id"] == session_id
    # No output yet, so "iterate" falls back to text2img.
    assert generation["type"] == "text2img" and generation["num_images"] == 2
    assert generation["parent_generation_id"] is None

    listed = client.get(f"{API}/sessions/{session_id}/messages").json()
    assert [m["id"] for m in listed["items"]] == [assistant["id"], user["id"]]
    page = client.get(f"{API}/sessions/{session_id}/messages", params={"limit": 1}).json()
    rest = client.get(f"{API}/sessions/{session_id}/messages", params={"limit": 1, "cursor": page["next_cursor"]})
    assert [m["id"] for m in rest.json()["items"]] == [user["id"]]


def test_modes_pick_the_generation_type_source_and_parent(accounts, container) -> None:
    client = accounts.make().client
    session_id = _new_session(client)
    first = _ok(_turn(client, session_id, content="a red barn", mode="fresh"))
    run_queue(container)
    first_output = client.get(f"{API}/generations/{first['generation_id']}").json()["outputs"][0]["id"]
    second = _ok(_turn(client, session_id, content="at night"))["generation"]
    assert second["type"] == "img2img" and second["parent_generation_id"] == first["generation_id"]
    assert second["inputs"] == [{"asset_id": first_output, "role": "init"}]
    run_queue(container)
    second_output = client.get(f"{API}/generations/{second['id']}").json()["outputs"][0]["id"]

    latest = _ok(_turn(client, session_id, content="in fog"))["generation"]
    assert latest["inputs"][0]["asset_id"] == second_output, "iterate defaults to the latest output"
    branch = _ok(_turn(client, session_id, content="in spring", source_asset_id=first_output))["generation"]
    assert branch["parent_generation_id"] == first["generation_id"]

    mask = upload(client, purpose="mask").json()["id"]
    inpaint = _ok(_turn(client, session_id, content="a red door", source_asset_id=first_output, mask_asset_id=mask))
    assert inpaint["generation"]["type"] == "inpaint"
    assert {(i["asset_id"], i["role"]) for i in inpaint["generation"]["inputs"]} == {
        (first_output, "init"),
        (mask, "mask"),
    }
    upscale = _ok(_turn(client, session_id, mode="upscale", params={"upscale_factor": 2}))["generation"]
    assert upscale["type"] == "upscale" and upscale["inputs"][0]["asset_id"] == second_output
    variation = _ok(_turn(client, session_id, mode="variation", source_asset_id=first_output))["generation"]
    assert variation["type"] == "variation" and variation["parent_generation_id"] == first["generation_id"]
    fresh = _ok(_turn(client, session_id, content="something else", mode="fresh"))["generation"]
    assert fresh["type"] == "text2img" and fresh["inputs"] == [] and fresh["parent_generation_id"] is None


def test_attachments_show_in_the_message_and_init_or_reference_uploads_are_used(accounts) -> None:
    client = accounts.make().client
    session_id = _new_session(client)
    init = upload(client, purpose="init").json()
    reference = upload(client, purpose="reference", filename="ref.png", data=None).json()
    turn = _ok(_turn(client, session_id, content="like this", attachment_ids=[init["id"], reference["id"], init["id"]]))
    assert [a["id"] for a in turn["user_message"]["attachments"]] == [init["id"], reference["id"]]
    generation = turn["generation"]
    assert generation["type"] == "img2img" and generation["parent_generation_id"] is None
    assert {(i["asset_id"], i["role"]) for i in generation["inputs"]} == {
        (init["id"], "init"),
        (reference["id"], "reference"),
    }
    # A reference upload goes to the generation as a reference image.
    refs = _ok(_turn(client, session_id, content="a cat", mode="fresh", attachment_ids=[reference["id"]]))
    assert refs["generation"]["inputs"] == [{"asset_id": reference["id"], "role": "reference"}]
    # The uploads now belong to the session (and go with it).
    assert client.get(f"{API}/assets/{init['id']}").json()["session_id"] == session_id


def test_settings_supply_the_provider_model_and_parameters_left_out(accounts) -> None:
    client = accounts.make().client
    settings = {
        "default_provider": "builtin",
        "default_model": "builtin-procedural",
        "default_params": {"steps": 12, "guidance": 4.5, "strength": 0.4, "seed": 77},
    }
    assert client.patch(f"{API}/me/settings", json=settings).status_code == 200
    session_id = _new_session(client)
    text = _ok(_turn(client, session_id, content="a fox", mode="fresh"))["generation"]
    assert (text["provider"], text["model"]) == ("builtin", "builtin-procedural")
    params = text["params"]
    assert (params["steps"], params["guidance"], params["seed"], params["strength"]) == (12, 4.5, 77, None)
    own = _ok(_turn(client, session_id, content="a fox", mode="fresh", params={"steps": 30, "seed": 1}))["generation"]
    assert (own["params"]["steps"], own["params"]["seed"], own["params"]["guidance"]) == (30, 1, 4.5)
    # A default provider that is not available is passed over rather than refused.
    client.patch(f"{API}/me/settings", json={"default_provider": "gone"})
    assert _ok(_turn(client, session_id, content="a fox", mode="fresh"))["generation"]["provider"] == "builtin"


def test_bad_turns_are_refused_and_change_nothing(accounts, container) -> None:
    owner, other = accounts.make(), accounts.make()
    client = owner.client
    session_id = _new_session(client)
    foreign_upload = upload(other.client).json()["id"]
    mask = upload(client, purpose="mask").json()["id"]
    before = _counts(container)
    cases = [
        ({"content": "x", "mode": "upscale"}, 422, "source_asset_id"),
        ({"content": "x", "mode": "variation"}, 422, "source_asset_id"),
        ({"content": "x", "mask_asset_id": mask}, 422, "mask_asset_id"),
        ({"content": "x", "mode": "fresh", "source_asset_id": mask}, 422, "source_asset_id"),
        ({"content": "x", "source_asset_id": foreign_upload}, 422, "source_asset_id"),
        ({"content": "x", "attachment_ids": [foreign_upload]}, 422, "attachment_ids"),
        ({"content": "x", "attachment_ids": [str(uuid.uuid4())]}, 422, "attachment_ids"),
        ({"content": "x", "mode": "sideways"}, 422, "mode"),
        ({"content": "x", "num_images": 11}, 422, "num_images"),
        ({"content": "x", "width": 100, "height": 100}, 422, "width"),
        ({"content": "x", "provider": "nowhere"}, 422, "provider"),
        ({"content": "x", "model": "not-a-model"}, 422, "model"),
        ({"content": "x", "aspect_ratio": "1:99"}, 422, "aspect_ratio"),
        ({"content": "x", "params": {"upscale_factor": 3}}, 422, "params.upscale_factor"),
        ({"content": "x" * 4001}, 422, "content"),
        ({"content": "x", "session_id": session_id}, 422, "session_id"),
    ]
    for body, status, field in cases:
        response = _turn(client, session_id, **body)
        assert_problem(response, status)
        assert field in error_fields(response), (body, response.json())
    assert_problem(_turn(client, str(uuid.uuid4()), content="x"), 404, "not_found")
    assert_problem(_turn(other.client, session_id, content="x"), 404, "not_found")
    malformed = client.post(
        f"{API}/sessions/{session_id}/messages", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_problem(malformed, 400, "malformed_body")
    assert _counts(container) == before


def test_another_users_image_gets_the_same_answer_on_a_turn_and_on_post_generations(accounts) -> None:
    owner, other = accounts.make(), accounts.make()
    foreign_upload = upload(other.client).json()["id"]
    session_id = _new_session(owner.client)
    on_turn = _turn(owner.client, session_id, content="x", source_asset_id=foreign_upload)
    direct = owner.client.post(
        f"{API}/generations",
        json={"prompt": "x", "type": "img2img", "source_asset_id": foreign_upload, "session_id": session_id},
    )
    for response in (on_turn, direct):
        assert_problem(response, 422, "invalid_generation_request")
        assert error_fields(response) == {"source_asset_id"}
