"""Notices announced in a transaction reach the hub attached to the database when, and only when,
the outermost transaction commits: never at a savepoint's release, and a savepoint rolled back
takes back what was announced inside it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest

from imagestudio import notify
from imagestudio.db import Database
from imagestudio.notify import NotificationHub


class Heard:
    def __init__(self, hub: NotificationHub) -> None:
        self.hub = hub
        self.cancels: list[uuid.UUID] = []
        self.work_version = hub.work.version
        hub.add_cancel_listener(self.cancels.append)

    @property
    def work(self) -> int:
        return self.hub.work.version - self.work_version


def test_a_commit_publishes_what_its_transaction_announced(db: Database, hub: NotificationHub) -> None:
    heard = Heard(hub)
    first, second = uuid.uuid4(), uuid.uuid4()
    with db.writing() as session:
        notify.announce_work(session)
        notify.announce_cancel(session, first)
        notify.announce_cancel(session, second)
        assert (heard.work, heard.cancels) == (0, [])
    assert heard.work == 1 and sorted(heard.cancels) == sorted([first, second])


def test_a_released_savepoint_publishes_nothing_until_the_commit(db: Database, hub: NotificationHub) -> None:
    heard = Heard(hub)
    generation_id = uuid.uuid4()
    with db.writing() as session:
        with session.begin_nested():
            notify.announce_work(session)
            notify.announce_cancel(session, generation_id)
        assert (heard.work, heard.cancels) == (0, [])  # released, not committed
        with session.begin_nested():
            pass
        assert (heard.work, heard.cancels) == (0, [])
    assert (heard.work, heard.cancels) == (1, [generation_id])


def test_a_savepoint_rolled_back_takes_back_only_its_own_notices(db: Database, hub: NotificationHub) -> None:
    heard = Heard(hub)
    before, inside, after = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with db.writing() as session:
        notify.announce_cancel(session, before)
        with pytest.raises(RuntimeError), session.begin_nested():
            notify.announce_cancel(session, inside)
            notify.announce_work(session)
            raise RuntimeError("roll the savepoint back")
        assert (heard.work, heard.cancels) == (0, [])
        notify.announce_cancel(session, after)
    assert heard.work == 0
    assert sorted(heard.cancels) == sorted([before, after])


def test_a_savepoint_rolled_back_in_a_fresh_transaction_leaves_nothing(db: Database, hub: NotificationHub) -> None:
    heard = Heard(hub)
    with db.writing() as session, pytest.raises(RuntimeError), session.begin_nested():
        notify.announce_work(session)
        raise RuntimeError("roll the savepoint back")
    assert (heard.work, heard.cancels) == (0, [])


def test_a_rolled_back_transaction_publishes_nothing(db: Database, hub: NotificationHub) -> None:
    heard = Heard(hub)
    with pytest.raises(RuntimeError), db.writing() as session:
        notify.announce_work(session)
        notify.announce_cancel(session, uuid.uuid4())
        raise RuntimeError("roll back")
    assert (heard.work, heard.cancels) == (0, [])
    with db.writing() as session:
        pass  # the next transaction does not inherit them
    assert (heard.work, heard.cancels) == (0, [])


def test_only_attached_hubs_hear_and_detaching_stops_them(db: Database) -> None:
    attached, elsewhere = NotificationHub(), NotificationHub()
    detach = notify.attach(db, attached)
    heard, not_heard = Heard(attached), Heard(elsewhere)
    try:
        with db.writing() as session:
            notify.announce_work(session)
        assert (heard.work, not_heard.work) == (1, 0)
    finally:
        detach()
    with db.writing() as session:
        notify.announce_work(session)
    assert heard.work == 1


class CountingLoop(asyncio.SelectorEventLoop):
    """Counts the calls other threads make into it (each one wakes the loop)."""

    calls_from_threads = 0

    def call_soon_threadsafe(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingLoop.calls_from_threads += 1
        return super().call_soon_threadsafe(*args, **kwargs)


def test_a_notice_for_many_subscribers_wakes_their_loop_once() -> None:
    owner, stranger = uuid.uuid4(), uuid.uuid4()
    hub = NotificationHub()

    async def scenario() -> None:
        async with contextlib.AsyncExitStack() as stack:
            mine = [await stack.enter_async_context(hub.subscribe_events(owner_id=owner)) for _ in range(300)]
            theirs = [await stack.enter_async_context(hub.subscribe_events(owner_id=stranger)) for _ in range(50)]
            CountingLoop.calls_from_threads = 0
            notice = notify.EventNotice(uuid.uuid4(), None, owner)
            await asyncio.to_thread(hub.publish_events, [notice])
            heard = await asyncio.gather(*(subscription.get(30) for subscription in mine))
            assert heard == [notice] * len(mine)
            assert all(subscription.last_notice_at > float("-inf") for subscription in mine)
            assert [await subscription.get(0) for subscription in theirs] == [None] * len(theirs)
            # The worker thread's to_thread hand-back is one call; the notice for 300 subscribers is one more.
            assert CountingLoop.calls_from_threads == 2

    with asyncio.Runner(loop_factory=CountingLoop) as runner:
        runner.run(scenario())
