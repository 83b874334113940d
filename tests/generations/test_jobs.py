"""The job's state machine: which lease news stops a job, and what a recorded outcome leaves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from imagestudio.generations.fenced import Outcome
from imagestudio.generations.jobs import Job, JobState, Slot
from imagestudio.generations.queue import ClaimedGeneration


def make_job() -> Job:
    now = datetime.now(UTC)
    claimed = ClaimedGeneration(
        id=uuid.uuid4(), owner_id=uuid.uuid4(), session_id=None, message_id=None, parent_generation_id=None,
        type="text2img", provider="builtin", model="builtin-procedural", prompt="a kite", negative_prompt=None,
        enhanced_prompt=None, aspect_ratio=None, width=64, height=64, num_images=1, steps=None, guidance=None,
        strength=None, scheduler=None, seed=1, upscale_factor=None, params={}, priority=0, attempt=1,
        max_attempts=3, event_seq=2, created_at=now, started_at=now, lease_owner="worker-1",
    )  # fmt: skip
    return Job(claimed, valid_until=0.0, slot=Slot(lambda: None))


@pytest.mark.parametrize("state", [JobState.running, JobState.releasing])
def test_a_missing_lease_stops_a_working_job(state: JobState) -> None:
    job = make_job()
    if state == JobState.releasing:
        job.release()
    assert job.lease_missing() is True
    assert job.state == JobState.lost
    assert job.lease_missing() is False  # news once


def test_a_missing_lease_while_recording_is_left_to_the_write() -> None:
    job = make_job()
    assert job.start_recording()
    assert job.lease_missing() is False and job.state == JobState.recording
    job.recorded(Outcome.done)
    assert job.state == JobState.finished
    assert job.lease_missing() is False and job.state == JobState.finished


def test_a_write_that_finds_the_lease_gone_is_news_once() -> None:
    job = make_job()
    assert job.start_recording()
    job.recorded(Outcome.lost)  # stays recording: lose() says whether anyone knew
    assert job.state == JobState.recording
    assert job.lose() is True and job.state == JobState.lost
    assert job.lose() is False
    assert not job.start_recording()  # a lost job records nothing


@pytest.mark.parametrize("before", [JobState.running, JobState.releasing])
def test_a_cancel_that_came_first_returns_the_job_to_where_it_was(before: JobState) -> None:
    job = make_job()
    if before == JobState.releasing:
        job.release()
    assert job.start_recording()
    job.recorded(Outcome.cancel_requested)
    assert job.state == before


def test_a_finished_job_cannot_be_released_or_recorded_again() -> None:
    job = make_job()
    assert job.start_recording()
    job.recorded(Outcome.done)
    job.release()
    assert job.state == JobState.finished
    assert not job.start_recording()


def test_the_slot_is_given_back_once() -> None:
    freed: list[int] = []
    slot = Slot(lambda: freed.append(1))
    assert slot.held
    slot.release()
    slot.release()
    assert freed == [1] and not slot.held
