"""Wake-ups: new work for workers, new events for live streams, cancel requests for running work.

Inside one process a NotificationHub carries them: the Container's, which the bootstrap attaches to
its database's session factories (workers and SSE streams wait on it, so pickup is immediate on
SQLite too). Across processes PostgreSQL carries them: services queue a notice in the
transaction that causes it (pg_notify is transactional, so nobody is woken before the rows are
visible) and every process runs a PostgresListener that feeds its hub. Polling remains the fallback:
a lost notification only delays work until the next poll.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

from sqlalchemy import event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from imagestudio.db import SessionLimits
from imagestudio.kit.tasks import cancel_and_wait

if TYPE_CHECKING:
    from imagestudio.db import Database

log = logging.getLogger(__name__)

WORK_CHANNEL = "imagestudio_work"
EVENTS_CHANNEL = "imagestudio_events"
CANCEL_CHANNEL = "imagestudio_cancel"
_CHANNELS = (WORK_CHANNEL, EVENTS_CHANNEL, CANCEL_CHANNEL)
# Bound on notices waiting for one slow subscriber; past it the subscriber gets one "resync" notice.
SUBSCRIPTION_BUFFER = 1000


class Signal:
    """A wake-up any thread can fire and any event loop can await, without losing a fire that happens
    between checking for work and starting to wait (callers pass the version they saw first)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def version(self) -> int:
        return self._version

    def fire(self) -> None:
        with self._lock:
            self._version += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop has closed
                pass

    async def wait(self, since: int, seconds: float | None) -> bool:
        """True when fired since version `since` (at once if already), False after `seconds`."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        entry = (loop, future)
        with self._lock:
            if self._version != since:
                return True
            self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, seconds)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                if entry in self._waiters:
                    self._waiters.remove(entry)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True)
class EventNotice:
    """Some generation has new events. generation_id None means "anything may have changed"
    (a listener reconnected or a subscriber fell behind): re-read from your cursor."""

    generation_id: uuid.UUID | None
    session_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None

    @property
    def is_resync(self) -> bool:
        return self.generation_id is None

    def to_payload(self) -> str:
        return json.dumps(
            {"g": str(self.generation_id), "s": _str_or_none(self.session_id), "o": _str_or_none(self.owner_id)},
            separators=(",", ":"),
        )

    @classmethod
    def from_payload(cls, payload: str) -> EventNotice:
        data = json.loads(payload)
        return cls(
            generation_id=uuid.UUID(data["g"]),
            session_id=uuid.UUID(data["s"]) if data.get("s") else None,
            owner_id=uuid.UUID(data["o"]) if data.get("o") else None,
        )


RESYNC = EventNotice(generation_id=None)


def _str_or_none(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


class EventSubscription:
    """Notices matching a filter, delivered to the event loop that opened the subscription.

    Use `async with hub.subscribe_events(session_id=...) as notices:` then `await notices.get(seconds)`
    or `async for notice in notices`. Resync notices always match.
    """

    def __init__(
        self,
        hub: NotificationHub,
        *,
        generation_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        owner_id: uuid.UUID | None = None,
    ) -> None:
        self._hub = hub
        self.generation_id = generation_id
        self.session_id = session_id
        self.owner_id = owner_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[EventNotice] = asyncio.Queue(SUBSCRIPTION_BUFFER)
        # When the latest notice arrived (time.monotonic()): it was sent after its commit, so a read
        # that starts later sees what every notice received so far announced.
        self.last_notice_at = float("-inf")

    def matches(self, notice: EventNotice) -> bool:
        if notice.is_resync:
            return True
        return (
            (self.generation_id is None or notice.generation_id == self.generation_id)
            and (self.session_id is None or notice.session_id == self.session_id)
            and (self.owner_id is None or notice.owner_id == self.owner_id)
        )

    async def __aenter__(self) -> EventSubscription:
        self._loop = asyncio.get_running_loop()
        self._hub._add_subscription(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._hub._remove_subscription(self)

    def _put(self, notice: EventNotice) -> None:
        self.last_notice_at = time.monotonic()
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            # Too far behind to track individual notices: replace them with one resync.
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait(RESYNC)

    async def get(self, seconds: float | None = None) -> EventNotice | None:
        """The next notice, or None after `seconds`."""
        try:
            return await asyncio.wait_for(self._queue.get(), seconds)
        except TimeoutError:
            return None

    def __aiter__(self) -> EventSubscription:
        return self

    async def __anext__(self) -> EventNotice:
        return await self._queue.get()


def _put_all(deliveries: list[tuple[EventSubscription, EventNotice]]) -> None:
    for subscription, notice in deliveries:
        subscription._put(notice)


@dataclass
class NotificationHub:
    """In-process fan-out. Every publish method is safe to call from any thread."""

    work: Signal = field(default_factory=Signal)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _subscriptions: list[EventSubscription] = field(default_factory=list)
    _cancel_listeners: list[Callable[[uuid.UUID], None]] = field(default_factory=list)

    def publish_work(self) -> None:
        self.work.fire()

    def publish_events(self, notices: Iterable[EventNotice]) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        if not subscriptions:
            return
        # One wake-up per event loop for all its subscribers, not one per subscriber: a thousand
        # streams open in one server cost one call into their loop per commit.
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[EventSubscription, EventNotice]]] = {}
        for notice in notices:
            for subscription in subscriptions:
                if subscription._loop is not None and subscription.matches(notice):
                    by_loop.setdefault(subscription._loop, []).append((subscription, notice))
        for loop, deliveries in by_loop.items():
            try:
                loop.call_soon_threadsafe(_put_all, deliveries)
            except RuntimeError:
                # That loop has closed; its subscribers are gone.
                pass

    def publish_cancel(self, generation_id: uuid.UUID) -> None:
        with self._lock:
            listeners = list(self._cancel_listeners)
        for listener in listeners:
            try:
                listener(generation_id)
            except Exception:
                log.exception("cancel listener failed")

    def subscribe_events(
        self,
        *,
        generation_id: uuid.UUID | None = None,
        session_id: uuid.UUID | None = None,
        owner_id: uuid.UUID | None = None,
    ) -> EventSubscription:
        return EventSubscription(self, generation_id=generation_id, session_id=session_id, owner_id=owner_id)

    def add_cancel_listener(self, listener: Callable[[uuid.UUID], None]) -> None:
        with self._lock:
            self._cancel_listeners.append(listener)

    def remove_cancel_listener(self, listener: Callable[[uuid.UUID], None]) -> None:
        with self._lock:
            if listener in self._cancel_listeners:
                self._cancel_listeners.remove(listener)

    def _add_subscription(self, subscription: EventSubscription) -> None:
        with self._lock:
            self._subscriptions.append(subscription)

    def _remove_subscription(self, subscription: EventSubscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)


# ---- notices queued inside a transaction, sent when (and only if) it commits ----

_PENDING_KEY = "imagestudio.notices"
# Copies of the pending notices taken when each savepoint began, innermost last.
_SAVEPOINTS_KEY = "imagestudio.notices.savepoints"


@dataclass
class _Pending:
    work: bool = False
    events: set[EventNotice] = field(default_factory=set)
    cancels: set[uuid.UUID] = field(default_factory=set)

    def copy(self) -> _Pending:
        return _Pending(work=self.work, events=set(self.events), cancels=set(self.cancels))

    def pg_notifications(self) -> list[tuple[str, str]]:
        notes: list[tuple[str, str]] = []
        if self.work:
            notes.append((WORK_CHANNEL, ""))
        notes.extend((EVENTS_CHANNEL, notice.to_payload()) for notice in self.events)
        notes.extend((CANCEL_CHANNEL, str(generation_id)) for generation_id in self.cancels)
        return notes


def _pending(db: Session) -> _Pending:
    pending = db.info.get(_PENDING_KEY)
    if pending is None:
        pending = db.info[_PENDING_KEY] = _Pending()
    return pending


def announce_work(db: Session) -> None:
    """Queued work became available (on commit)."""
    _pending(db).work = True


def announce_events(db: Session, notices: Iterable[EventNotice]) -> None:
    _pending(db).events.update(notices)


def announce_cancel(db: Session, generation_id: uuid.UUID) -> None:
    _pending(db).cancels.add(generation_id)


def attach(db: Database, hub: NotificationHub) -> Callable[[], None]:
    """Send the notices announced in `db`'s sessions to `hub` (and, on PostgreSQL, to other
    processes) when their transaction commits. Returns a function that detaches again.

    Releasing or rolling back a savepoint is not a commit: nothing is sent then, and a savepoint
    rolled back takes back the notices announced inside it."""

    def send_pg_notifications(session: Session) -> None:
        pending: _Pending | None = session.info.get(_PENDING_KEY)
        if pending is None or session.in_nested_transaction() or session.get_bind().dialect.name != "postgresql":
            return
        notes = pending.pg_notifications()
        if notes:
            # One statement for all of them; PostgreSQL delivers them when the transaction commits.
            session.execute(select(*(func.pg_notify(channel, payload) for channel, payload in notes)))

    def publish_in_process(session: Session) -> None:
        if session.in_nested_transaction():
            return
        pending: _Pending | None = session.info.pop(_PENDING_KEY, None)
        if pending is None:
            return
        if pending.work:
            hub.publish_work()
        if pending.events:
            hub.publish_events(pending.events)
        for generation_id in pending.cancels:
            hub.publish_cancel(generation_id)

    def remember_at_savepoint(session: Session, transaction: SessionTransaction) -> None:
        if transaction.nested:
            snapshot = session.info.get(_PENDING_KEY)
            session.info.setdefault(_SAVEPOINTS_KEY, []).append(None if snapshot is None else snapshot.copy())

    def forget(session: Session) -> None:
        if not session.in_nested_transaction():
            session.info.pop(_PENDING_KEY, None)
            return
        # A savepoint rolled back: back to what was pending when it began.
        snapshots = session.info.get(_SAVEPOINTS_KEY) or [None]
        if snapshots[-1] is None:
            session.info.pop(_PENDING_KEY, None)
        else:
            session.info[_PENDING_KEY] = snapshots[-1].copy()

    def end_savepoint(session: Session, transaction: SessionTransaction) -> None:
        snapshots = session.info.get(_SAVEPOINTS_KEY)
        if transaction.nested and snapshots:
            snapshots.pop()

    listeners: list[tuple[sessionmaker[Session], str, Callable[..., None]]] = [
        (factory, name, function)
        for factory in (db.read, db.write)
        for name, function in (
            ("before_commit", send_pg_notifications),
            ("after_commit", publish_in_process),
            ("after_transaction_create", remember_at_savepoint),
            ("after_rollback", forget),
            ("after_transaction_end", end_savepoint),
        )
    ]
    for factory, name, function in listeners:
        event.listen(factory, name, function)

    def detach() -> None:
        for factory, name, function in listeners:
            event.remove(factory, name, function)

    return detach


# ---- PostgreSQL: notices from other processes ----


def libpq_url(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresListener:
    """LISTENs on the engine's channels with one connection per process and feeds the hub.

    Reconnects after errors; after every (re)connection it wakes workers and sends subscribers a
    resync notice, since notifications sent while disconnected are lost.
    """

    def __init__(
        self,
        database_url: str,
        hub: NotificationHub,
        *,
        reconnect_delay: float = 1.0,
        limits: SessionLimits | None = None,
    ) -> None:
        self._url = libpq_url(database_url)
        # Keepalives let a listener whose link died notice it and reconnect instead of waiting forever.
        self._parameters = (limits or SessionLimits.for_lease()).libpq_parameters()
        self._hub = hub
        self._reconnect_delay = reconnect_delay
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self, connect_wait: float = 5.0) -> None:
        """Start listening; waits (up to connect_wait seconds) for the first LISTEN so nothing sent
        after start() returns is missed."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="imagestudio-pg-listener")
        try:
            await asyncio.wait_for(self._connected.wait(), connect_wait)
        except TimeoutError:
            log.warning("notification listener not connected yet; relying on polling meanwhile")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        import psycopg

        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, **self._parameters
                ) as conn:
                    for channel in _CHANNELS:
                        await conn.execute(f"LISTEN {channel}")
                    self._connected.set()
                    self._hub.publish_work()
                    self._hub.publish_events([RESYNC])
                    async for note in conn.notifies():
                        self._dispatch(note.channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("notification listener lost its connection (%s); reconnecting", error)
            self._connected.clear()
            await asyncio.sleep(self._reconnect_delay)

    def _dispatch(self, channel: str, payload: str) -> None:
        try:
            if channel == WORK_CHANNEL:
                self._hub.publish_work()
            elif channel == EVENTS_CHANNEL:
                self._hub.publish_events([EventNotice.from_payload(payload)])
            elif channel == CANCEL_CHANNEL:
                self._hub.publish_cancel(uuid.UUID(payload))
        except (ValueError, KeyError):
            log.warning("ignoring malformed notification on %s: %r", channel, payload)
