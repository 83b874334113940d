"""POST|GET /api/v1/assets/{id}/captions: captions of outputs and uploads, as durable jobs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from imagestudio.language import LanguageRegistry
from imagestudio.models import Caption, Generation
from tests.api.helpers import API, assert_problem, error_fields, image_bytes, run_queue, upload
from tests.fakes.chat_openai import FakeChatCompletions, chat_model


def _counts(container) -> tuple[int, int]:
    with container.db.reading() as db:
        return (
            db.scalar(select(func.count()).select_from(Caption)),
            db.scalar(select(func.count()).select_from(Generation)),
        )


def test_an_upload_is_captioned_by_the_configured_model(accounts, container) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    owner = accounts.make()
    asset_id = upload(owner.client, image_bytes((64, 48), (10, 120, 30), "JPEG"), filename="a.jpg").json()["id"]

    answer = owner.client.post(f"{API}/assets/{asset_id}/captions", json={"style": "prompt"})
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert (queued["status"], queued["text"], queued["style"], queued["provider"]) == (
        "queued",
        None,
        "prompt",
        "openai",
    )
    assert queued["image_type"] == "jpeg" and queued["asset_id"] == asset_id

    run_queue(container)
    listed = owner.client.get(f"{API}/assets/{asset_id}/captions").json()
    assert listed["next_cursor"] is None
    [caption] = listed["items"]
    assert caption["id"] == queued["id"] and caption["status"] == "succeeded"
    assert caption["text"].startswith("A picture of 64x48 pixels")
    assert caption["model"] == "gpt-4o-mini" and caption["by_ai"] is True
    assert caption["prompt_tokens"] > 0 and caption["completion_tokens"] == len(caption["text"].split())
    # The job is a generation: its events tell the story.
    events = owner.client.get(f"{API}/generations/{caption['generation_id']}").json()
    assert (events["type"], events["status"]) == ("caption", "succeeded")


def test_outputs_are_captioned_by_the_builtin_describer_when_nothing_is_configured(accounts, container) -> None:
    owner = accounts.make()
    generation = owner.client.post(f"{API}/generations", json={"prompt": "a lighthouse", "width": 64, "height": 64})
    assert generation.status_code == 201, generation.text
    run_queue(container)
    output_id = owner.client.get(f"{API}/generations/{generation.json()['id']}").json()["outputs"][0]["id"]
    assert owner.client.post(f"{API}/assets/{output_id}/captions").status_code == 202  # no body at all
    run_queue(container)
    [caption] = owner.client.get(f"{API}/assets/{output_id}/captions").json()["items"]
    assert caption["status"] == "succeeded" and caption["by_ai"] is False
    assert caption["text"].startswith("A 64x64 square image") and "not an AI model" in caption["text"]
    assert caption["image_type"] == "png"


@pytest.mark.parametrize("image_format", ["GIF", "BMP", "TIFF", "AVIF"])
def test_other_formats_are_stored_as_png_and_can_be_captioned(accounts, container, image_format: str) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    owner = accounts.make()
    data = image_bytes((40, 30), (200, 200, 20), image_format)
    uploaded = upload(owner.client, data, filename=f"scan.{image_format.lower()}")
    assert uploaded.status_code == 201, uploaded.text
    assert uploaded.json()["mime_type"] == "image/png"
    content = owner.client.get(f"{API}/assets/{uploaded.json()['id']}/content")
    assert content.content.startswith(b"\x89PNG\r\n\x1a\n")
    owner.client.post(f"{API}/assets/{uploaded.json()['id']}/captions")
    run_queue(container)
    [caption] = owner.client.get(f"{API}/assets/{uploaded.json()['id']}/captions").json()["items"]
    assert caption["text"].startswith("A picture of 40x30 pixels") and caption["image_type"] == "png"


def test_captions_page_newest_first(accounts, container) -> None:
    owner = accounts.make()
    asset_id = upload(owner.client).json()["id"]
    ids = [owner.client.post(f"{API}/assets/{asset_id}/captions").json()["id"] for _ in range(3)]
    first = owner.client.get(f"{API}/assets/{asset_id}/captions", params={"limit": 2}).json()
    second = owner.client.get(
        f"{API}/assets/{asset_id}/captions", params={"limit": 2, "cursor": first["next_cursor"]}
    ).json()
    assert [item["id"] for item in first["items"] + second["items"]] == ids[::-1]
    assert second["next_cursor"] is None


def test_a_queued_caption_can_be_cancelled(accounts, container) -> None:
    owner = accounts.make()
    asset_id = upload(owner.client).json()["id"]
    caption = owner.client.post(f"{API}/assets/{asset_id}/captions").json()
    canceled = owner.client.post(f"{API}/generations/{caption['generation_id']}/cancel")
    assert canceled.status_code == 200, canceled.text
    [listed] = owner.client.get(f"{API}/assets/{asset_id}/captions").json()["items"]
    assert (listed["status"], listed["text"]) == ("canceled", None)
    # A caption job is not rerun as a generation: a new caption is asked for instead.
    retried = owner.client.post(f"{API}/generations/{caption['generation_id']}/retry")
    assert_problem(retried, 422, "invalid_generation_request")
    assert error_fields(retried) == {"type"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"style": "poem"}, "style"),
        ({"provider": "nobody"}, "provider"),
        ({"provider": "gemini"}, "provider"),  # known, but no key is set
        ({"provider": ""}, "provider"),
        ({"model": "x" * 201}, "model"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(accounts, container, body: dict, field: str) -> None:
    container.language = LanguageRegistry.from_settings(container.settings, None)  # type: ignore[arg-type]
    owner = accounts.make()
    asset_id = upload(owner.client).json()["id"]
    before = _counts(container)
    response = owner.client.post(f"{API}/assets/{asset_id}/captions", json=body)
    assert_problem(response, 422, "validation_failed")
    assert any(field in name for name in error_fields(response)), response.json()
    assert _counts(container) == before


def test_unknown_deleted_and_foreign_assets_are_not_found(accounts, container) -> None:
    owner, stranger = accounts.make(), accounts.make()
    asset_id = upload(owner.client).json()["id"]
    before = _counts(container)
    assert_problem(stranger.client.post(f"{API}/assets/{asset_id}/captions"), 404, "not_found")
    assert_problem(stranger.client.get(f"{API}/assets/{asset_id}/captions"), 404, "not_found")
    missing = "0190aaaa-0000-7000-8000-000000000000"
    assert_problem(owner.client.post(f"{API}/assets/{missing}/captions"), 404, "not_found")
    assert_problem(owner.client.get(f"{API}/assets/not-a-uuid/captions"), 422)
    assert _counts(container) == before
