"""The worker end to end: outputs, retries, failures, cancellation, lost leases, fairness, shutdown."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time

import pytest
from PIL import Image
from sqlalchemy import select

from imagestudio.assets.images import encode_png, read_png_metadata, sha256_hex
from imagestudio.db import Database
from imagestudio.generations import queue
from imagestudio.generations.events import events_after
from imagestudio.generations.service import request_cancel
from imagestudio.models import Asset, ChatSession, Message
from imagestudio.notify import NotificationHub
from imagestudio.providers.base import (
    ContentRejectedError,
    NotConfiguredError,
    PermanentError,
    RetriableError,
)
from imagestudio.storage.keys import output_key
from tests import factories
from tests.generations.conftest import load, running_worker, submit, wait_final, wait_for

pytestmark = pytest.mark.anyio


def types_of(db: Database, generation_id) -> list[str]:
    return [event.type for event in events_after(db, generation_id=generation_id)]


async def test_a_generation_runs_end_to_end(db: Database, registry, settings, storage) -> None:
    with db.writing() as session:
        owner = factories.make_user(session)
        chat = factories.make_session(session, owner)
        message = factories.make_message(session, chat, role="assistant", content="")
        ids = (owner.id, chat.id, message.id)
    generation_id = submit(
        db,
        ids[0],
        registry,
        settings,
        provider="builtin",
        prompt="a lighthouse at dusk",
        negative_prompt="fog",
        num_images=2,
        seed=7,
        steps=4,
        guidance=6.5,
        session_id=ids[1],
        message_id=ids[2],
    )
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    generation = final[generation_id]
    assert (generation.status, generation.attempt, generation.served_by) == ("succeeded", 1, "builtin")
    assert generation.running_slot is None and generation.duration_ms is not None
    assert (generation.progress_step, generation.progress_total) == (8, 8)
    with db.reading() as session:
        outputs = session.scalars(select(Asset).where(Asset.generation_id == generation_id).order_by(Asset.batch_index))
        outputs = list(outputs)
        chat = session.get(ChatSession, ids[1])
        assert session.get(Message, ids[2]).status == "succeeded"
    assert [asset.batch_index for asset in outputs] == [0, 1]
    for asset in outputs:
        data = storage.get(asset.storage_key)
        assert asset.storage_key == output_key(generation_id, 1, asset.batch_index)
        assert sha256_hex(data) == asset.sha256 and len(data) == asset.bytes
        assert Image.open(io.BytesIO(data)).size == (64, 64) == (asset.width, asset.height)
        assert asset.seed == 7 + asset.batch_index
        metadata = read_png_metadata(data)
        assert metadata["prompt"] == "a lighthouse at dusk" and metadata["negative_prompt"] == "fog"
        assert (metadata["seed"], metadata["steps"], metadata["guidance"]) == (str(asset.seed), "4", "6.5")
        assert (metadata["model"], metadata["provider"], metadata["type"]) == (
            "builtin-procedural",
            "builtin",
            "text2img",
        )
        # Thumbnails are made by their first request (tests/api/test_assets_thumbnails.py).
        assert asset.thumbnail_key is None
    assert sorted(storage.list("")) == [output_key(generation_id, 1, index) for index in (0, 1)]
    assert (chat.image_count, chat.thumbnail_asset_id) == (2, outputs[-1].id)
    assert types_of(db, generation_id) == [
        "queued",
        "started",
        "progress",
        "output_stored",
        "output_stored",
        "succeeded",
    ]


async def test_edits_read_their_source_image_from_storage(db: Database, registry, settings, storage, scripted, user_id):
    source = Image.new("RGB", (96, 80), (200, 30, 30))
    data = encode_png(source, {})
    storage.put("uploads/source.png", data, "image/png")
    with db.writing() as session:
        upload = factories.make_upload(
            session, session.get(factories.User, user_id), storage_key="uploads/source.png", width=96, height=80
        ).id
    generation_id = submit(
        db, user_id, registry, settings, type="img2img", source_asset_id=upload, strength=0.4, width=None, height=None
    )
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    assert final[generation_id].status == "succeeded"
    [request] = scripted.requests
    assert request.init_image is not None and request.init_image.size == (96, 80)
    assert request.init_image.getpixel((0, 0)) == (200, 30, 30)
    assert (request.width, request.height, request.strength) == (96, 80, 0.4)


async def test_a_missing_source_object_fails_without_retrying(db: Database, registry, settings, storage, user_id):
    with db.writing() as session:
        upload = factories.make_upload(session, session.get(factories.User, user_id)).id
    generation_id = submit(db, user_id, registry, settings, type="img2img", source_asset_id=upload)
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    assert (final[generation_id].status, final[generation_id].error_code) == ("failed", "input_unavailable")
    assert final[generation_id].attempt == 1


async def test_retriable_errors_go_back_to_the_queue_after_retry_after(
    db: Database, registry, settings, storage, scripted, user_id
) -> None:
    scripted.script = [RetriableError("rate limited", retry_after=0.4)]
    generation_id = submit(db, user_id, registry, settings)
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    assert (final[generation_id].status, final[generation_id].attempt) == ("succeeded", 2)
    events = events_after(db, generation_id=generation_id)
    assert [event.type for event in events] == [
        "queued", "started", "retrying", "started", "progress", "output_stored", "succeeded"
    ]  # fmt: skip
    retrying, second_start = events[2], events[3]
    assert retrying.payload["error"] == {"code": "provider_unavailable", "message": "rate limited"}
    waited = (second_start.created_at - retrying.created_at).total_seconds()
    assert waited >= 0.35  # the backend's retry_after, not the (much shorter) test backoff
    assert len(scripted.requests) == 2


async def test_retriable_errors_fail_once_attempts_are_spent(
    db: Database, registry, settings, storage, scripted, user_id
):
    scripted.script = [RetriableError("busy"), RetriableError("busy"), RetriableError("still busy")]
    generation_id = submit(db, user_id, registry, settings)
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    generation = final[generation_id]
    assert (generation.status, generation.attempt, generation.error_code) == ("failed", 3, "provider_unavailable")
    assert generation.error_message == "still busy"
    assert types_of(db, generation_id).count("started") == 3


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ContentRejectedError("the prompt was refused"), "content_rejected"),
        (PermanentError("bad request"), "provider_failed"),
        (NotConfiguredError("no API key"), "provider_not_configured"),
    ],
)
async def test_errors_that_would_recur_fail_at_once(
    db: Database, registry, settings, storage, scripted, user_id, error, code
) -> None:
    scripted.script = [error]
    generation_id = submit(db, user_id, registry, settings)
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    generation = final[generation_id]
    assert (generation.status, generation.attempt, generation.error_code) == ("failed", 1, code)
    assert generation.error_message == error.message
    assert len(scripted.requests) == 1
    assert types_of(db, generation_id) == ["queued", "started", "failed"]
    assert events_after(db, generation_id=generation_id)[-1].payload["code"] == code


async def test_unexpected_exceptions_are_treated_as_transient(db, registry, settings, storage, scripted, user_id):
    scripted.script = [RuntimeError("connection reset")]
    generation_id = submit(db, user_id, registry, settings)
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    assert (final[generation_id].status, final[generation_id].attempt) == ("succeeded", 2)


async def test_cancel_stops_a_running_generation(db: Database, registry, settings, storage, scripted) -> None:
    with db.writing() as session:
        owner = factories.make_user(session)
        chat = factories.make_session(session, owner)
        message = factories.make_message(session, chat, role="assistant", content="")
        ids = (owner.id, chat.id, message.id)
    scripted.held.set()
    generation_id = submit(db, ids[0], registry, settings, session_id=ids[1], message_id=ids[2])
    async with running_worker(db, storage, registry, settings):
        await wait_for(scripted.entered.is_set)
        started = time.monotonic()
        with db.writing() as session:
            request_cancel(session, generation_id=generation_id, owner_id=ids[0])
        final = await wait_final(db, [generation_id])
        # Seen at the next step, well before the held run would ever finish on its own.
        assert time.monotonic() - started < 15
    assert final[generation_id].status == "canceled"
    assert types_of(db, generation_id) == ["queued", "started", "cancel_requested", "canceled"]
    assert list(storage.list("")) == []
    with db.reading() as session:
        assert session.get(Message, ids[2]).status == "canceled"
        assert session.get(ChatSession, ids[1]).image_count == 0


async def test_a_worker_elsewhere_sees_the_cancel_at_its_next_progress_write(
    db: Database, registry, settings, storage, scripted, user_id
) -> None:
    scripted.steps, scripted.step_delay = 200, 0.01
    generation_id = submit(db, user_id, registry, settings)
    # A hub of its own: the cancel notice published in this process never reaches it.
    async with running_worker(db, storage, registry, settings, hub=NotificationHub(), progress_interval=0.05):
        await wait_for(scripted.entered.is_set)
        with db.writing() as session:
            request_cancel(session, generation_id=generation_id, owner_id=user_id)
        final = await wait_final(db, [generation_id], seconds=3.0)
    assert final[generation_id].status == "canceled"
    assert final[generation_id].progress_step < 200


async def test_outputs_of_a_provider_that_ignores_cancel_are_discarded(
    db: Database, registry, settings, storage, user_id
) -> None:
    stubborn = registry.get("scripted")
    stubborn.honour_cancel = False
    stubborn.held.set()
    generation_id = submit(db, user_id, registry, settings, num_images=3)
    async with running_worker(db, storage, registry, settings):
        await wait_for(stubborn.entered.is_set)
        with db.writing() as session:
            request_cancel(session, generation_id=generation_id, owner_id=user_id)
        stubborn.released.set()  # it finishes anyway and returns three images
        final = await wait_final(db, [generation_id])
    assert final[generation_id].status == "canceled"
    assert list(storage.list("")) == []
    with db.reading() as session:
        assert session.scalars(select(Asset).where(Asset.generation_id == generation_id)).all() == []
    assert "output_stored" not in types_of(db, generation_id)


async def test_a_worker_that_stalled_past_its_lease_writes_nothing_more(
    db: Database, registry, settings, storage, scripted, user_id
) -> None:
    settings.lease_seconds = 0.4
    # The worker's whole process freezes, heartbeats included, until another worker has taken over.
    scripted.stall_until = threading.Event()
    generation_id = submit(db, user_id, registry, settings)
    taken_over = threading.Event()

    def another_worker() -> None:
        try:
            scripted.entered.wait(5)
            # Reap as soon as the frozen worker's lease has run out (it cannot renew while frozen).
            deadline = time.monotonic() + 20
            while not (reaped := queue.reap(db, backoff_base=0.0001)):
                assert time.monotonic() < deadline, "the lease never expired"
                time.sleep(0.05)
            assert [item.status for item in reaped] == ["queued"]
            while not queue.claim(db, worker_id="intruder", limit=1, lease_seconds=30, default_max_running=2):
                assert time.monotonic() < deadline, "the reaped generation was never claimable"
                time.sleep(0.01)
            taken_over.set()
        finally:
            scripted.stall_until.set()

    helper = threading.Thread(target=another_worker)
    helper.start()
    async with running_worker(db, storage, registry, settings, progress_interval=0.01, reap_interval=60) as worker:
        await wait_for(scripted.entered.is_set)
        await wait_for(lambda: worker.busy == 0, seconds=5)
    helper.join()
    assert taken_over.is_set()
    generation = load(db, generation_id)
    assert (generation.status, generation.lease_owner, generation.attempt) == ("processing", "intruder", 2)
    events = events_after(db, generation_id=generation_id)
    # After the reaper's 'retrying', only the intruder's 'started' exists: nothing from the old worker,
    # and it stored nothing: it checked its lease before touching storage.
    assert [event.type for event in events] == ["queued", "started", "retrying", "started"]
    assert events[-1].payload["worker"] == "intruder"
    assert list(storage.list("")) == []


async def test_one_user_cannot_take_every_slot(db: Database, registry, settings, storage, scripted) -> None:
    with db.writing() as session:
        flood_owner, single_owner = factories.make_user(session).id, factories.make_user(session).id
    scripted.step_delay = 0.02
    flood = [submit(db, flood_owner, registry, settings, prompt=f"A: picture {n}") for n in range(6)]
    single = submit(db, single_owner, registry, settings, prompt="B: just one")
    async with running_worker(db, storage, registry, settings, concurrency=4):
        final = await wait_final(db, [*flood, single])
    assert all(generation.status == "succeeded" for generation in final.values())
    assert scripted.peak["A"] == 2  # settings.max_running_per_user
    # B's single request started before most of A's backlog.
    started_b = final[single].started_at
    assert sum(1 for generation_id in flood if final[generation_id].started_at < started_b) <= 2


async def test_progress_is_throttled_with_the_final_step_kept(db, registry, settings, storage, scripted, user_id):
    scripted.steps, scripted.step_delay = 20, 0.02
    generation_id = submit(db, user_id, registry, settings)
    async with running_worker(db, storage, registry, settings, progress_interval=0.1):
        await wait_final(db, [generation_id])
    progress = [event.payload for event in events_after(db, generation_id=generation_id) if event.type == "progress"]
    assert 2 <= len(progress) <= 8  # about one per 100 ms of a 400 ms run, never one per step
    assert progress[-1] == {"step": 20, "total": 20}
    steps = [item["step"] for item in progress]
    assert steps == sorted(set(steps))


async def test_stopping_hands_unfinished_work_back_to_the_queue(db, registry, settings, storage, scripted, user_id):
    scripted.held.set()
    generation_id = submit(db, user_id, registry, settings)
    async with running_worker(db, storage, registry, settings) as worker:
        await wait_for(scripted.entered.is_set)
        await worker.stop(grace=0.1)
    generation = load(db, generation_id)
    assert (generation.status, generation.attempt, generation.running_slot) == ("queued", 0, None)
    last = events_after(db, generation_id=generation_id)[-1]
    assert (last.type, last.payload["error"]["code"]) == ("retrying", "worker_shutdown")
    scripted.held.clear()
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    assert (final[generation_id].status, final[generation_id].attempt) == ("succeeded", 1)


async def test_an_idle_worker_picks_up_new_work_at_once(db: Database, registry, settings, storage, user_id) -> None:
    async with running_worker(db, storage, registry, settings, poll_interval=30):
        await asyncio.sleep(0.05)  # the worker is now waiting for work, with a long poll
        generation_id = submit(db, user_id, registry, settings)
        final = await wait_final(db, [generation_id], seconds=5)
    pickup = final[generation_id].started_at - final[generation_id].created_at
    assert pickup.total_seconds() < 5  # woken by the commit, not by the 30 s poll


async def test_stopping_cancels_rather_than_releases_what_was_asked_to_cancel(
    db: Database, registry, settings, storage, scripted, user_id
) -> None:
    scripted.honour_cancel = False  # it will have to be interrupted
    scripted.held.set()
    generation_id = submit(db, user_id, registry, settings)
    async with running_worker(db, storage, registry, settings, hub=NotificationHub()) as worker:
        await wait_for(scripted.entered.is_set)
        with db.writing() as session:
            request_cancel(session, generation_id=generation_id, owner_id=user_id)
        await worker.stop(grace=0.1)
    generation = load(db, generation_id)
    assert (generation.status, generation.running_slot) == ("canceled", None)
    assert types_of(db, generation_id)[-1] == "canceled"


def outputs_of(db: Database, generation_id) -> list[Asset]:
    with db.reading() as session:
        query = select(Asset).where(Asset.generation_id == generation_id).order_by(Asset.batch_index)
        return list(session.scalars(query))


async def test_a_provider_that_reports_no_seed_gets_none_recorded(
    db: Database, registry, settings, storage, scripted, user_id
) -> None:
    scripted.report_seeds = False  # as OpenAI and Gemini: the seed is not part of their answer
    generation_id = submit(db, user_id, registry, settings, prompt="a kite", seed=11, num_images=2)
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    assert final[generation_id].status == "succeeded"
    assert final[generation_id].seed == 11  # what was asked for stays on the generation
    outputs = outputs_of(db, generation_id)
    assert [asset.batch_index for asset in outputs] == [0, 1]
    for asset in outputs:
        assert asset.seed is None
        metadata = read_png_metadata(storage.get(asset.storage_key))
        assert "seed" not in metadata and metadata["prompt"] == "a kite"


async def test_the_prompt_sent_and_the_providers_revision_are_kept_apart(
    db: Database, registry, settings, storage, scripted, user_id
) -> None:
    from imagestudio.generations.spec import PromptOptions
    from imagestudio.generations.views import generation_out

    revised = "A red kite soaring over green hills, in the style of an ukiyo-e woodblock print"
    scripted.revised_prompt = revised
    generation_id = submit(
        db, user_id, registry, settings, prompt="a kite", prompt_options=PromptOptions(style="ukiyo-e")
    )
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    generation = final[generation_id]
    assert generation.status == "succeeded"
    sent = scripted.requests[0].prompt
    assert sent.startswith("a kite, ") and "ukiyo-e" in sent
    assert (generation.prompt, generation.enhanced_prompt, generation.revised_prompt) == ("a kite", sent, revised)
    [asset] = outputs_of(db, generation_id)
    metadata = read_png_metadata(storage.get(asset.storage_key))
    assert metadata["prompt"] == sent and metadata["original_prompt"] == "a kite"
    assert metadata["revised_prompt"] == revised
    answer = generation_out(generation, [], [asset])
    assert (answer.prompt, answer.enhanced_prompt, answer.revised_prompt) == ("a kite", sent, revised)


async def test_a_provider_without_a_revision_leaves_revised_prompt_empty(
    db: Database, registry, settings, storage, scripted, user_id
) -> None:
    generation_id = submit(db, user_id, registry, settings, prompt="a kite")
    async with running_worker(db, storage, registry, settings):
        final = await wait_final(db, [generation_id])
    assert (final[generation_id].enhanced_prompt, final[generation_id].revised_prompt) == (None, None)
    [asset] = outputs_of(db, generation_id)
    metadata = read_png_metadata(storage.get(asset.storage_key))
    assert metadata["prompt"] == "a kite" and "revised_prompt" not in metadata and "original_prompt" not in metadata


async def test_a_renewal_right_after_a_recorded_success_raises_no_alarm(
    db: Database, registry, settings, storage, scripted, user_id, caplog, monkeypatch
) -> None:
    """The heartbeat may renew after the success is committed but before the worker hears back from
    that write: the lease is gone then, rightly, and that is no loss."""
    from imagestudio.generations import fenced

    loop = asyncio.get_running_loop()
    renewals: list[tuple[set, set]] = []
    real_renew, real_finish = queue.renew, fenced.finish_succeeded

    def renew(db, leases, lease_seconds):
        held = real_renew(db, leases, lease_seconds)
        renewals.append(({lease.generation_id for lease in leases}, set(held)))
        return held

    def finish_then_heartbeat(*args, **kwargs):
        outcome = real_finish(*args, **kwargs)
        # One heartbeat, run to its end, before this write returns to the worker.
        asyncio.run_coroutine_threadsafe(worker.renew_leases(), loop).result(timeout=30)
        return outcome

    monkeypatch.setattr(queue, "renew", renew)
    monkeypatch.setattr(fenced, "finish_succeeded", finish_then_heartbeat)
    generation_id = submit(db, user_id, registry, settings, prompt="a kite")
    caplog.set_level("WARNING", logger="imagestudio")
    async with running_worker(db, storage, registry, settings) as worker:
        final = await wait_final(db, [generation_id])
        await worker.wait_idle()
    assert final[generation_id].status == "succeeded"
    # The heartbeat did ask for the lease after the success and did not get it.
    assert any(generation_id in asked and generation_id not in held for asked, held in renewals)
    assert [record.getMessage() for record in caplog.records if "lease" in record.getMessage()] == []


async def test_maintenance_sweeps_temp_files_a_crash_left_in_storage(db: Database, registry, settings, storage) -> None:
    from imagestudio.storage.local import TEMP_PREFIX

    settings.storage_temp_max_age_seconds = 600
    storage.put("outputs/earlier/0.png", b"complete", "image/png")
    folder = storage.root / "outputs" / "earlier"
    stale, fresh = folder / f"{TEMP_PREFIX}00000000000000aa", folder / f"{TEMP_PREFIX}00000000000000bb"
    stale.write_bytes(b"left by a worker killed before its rename")
    fresh.write_bytes(b"a write another process is doing now")
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    async with running_worker(db, storage, registry, settings):
        await wait_for(lambda: not stale.exists())
    assert fresh.exists() and storage.get("outputs/earlier/0.png") == b"complete"


async def test_free_slots_are_filled_by_one_claim(
    db: Database, registry, settings, storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.writing() as session:
        owners = [factories.make_user(session).id for _ in range(2)]
    ids = [submit(db, owner, registry, settings, prompt=f"picture {n}") for owner in owners for n in range(2)]
    claims: list[tuple[int, int]] = []
    real_claim = queue.claim

    def counted_claim(*args, **kwargs):
        claimed = real_claim(*args, **kwargs)
        claims.append((kwargs["limit"], len(claimed)))
        return claimed

    monkeypatch.setattr(queue, "claim", counted_claim)
    async with running_worker(db, storage, registry, settings, concurrency=4):
        final = await wait_final(db, ids)
    # Four free slots, four ready generations: one claim statement took them all (each under its own
    # lease, so each finished once, on its first attempt).
    assert claims[0] == (4, 4)
    assert [taken for _, taken in claims if taken] == [4]
    assert {(generation.status, generation.attempt) for generation in final.values()} == {("succeeded", 1)}
