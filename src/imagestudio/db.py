"""Database engine and session factories.

SQLite is set up for a server: WAL, foreign keys, a busy timeout, and write transactions that
start with BEGIN IMMEDIATE so two writers queue on the busy timeout instead of failing on a lock
upgrade. Read transactions stay DEFERRED so readers never block writers.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from imagestudio.config import Settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Execution option read by the begin hook: "IMMEDIATE" for sessions that will write.
SQLITE_BEGIN_OPTION = "sqlite_begin"
DEFAULT_LEASE_SECONDS = 30.0


@dataclass(frozen=True)
class SessionLimits:
    """Bounds on every PostgreSQL session, so a peer that vanished (crashed, or cut off by the network
    without closing its sockets) cannot hold a transaction, its row locks, or a waiting statement for
    long. PostgreSQL's own defaults are "never" for all of them and two hours for keepalives.

    Seconds throughout; 0 turns a limit off."""

    # The server ends a session that sits inside a transaction this long (a dead peer's locks go).
    idle_in_transaction: float
    # A statement that waits this long for a lock fails instead of queueing behind a stuck holder.
    lock_timeout: float
    # A statement that runs this long is cancelled.
    statement_timeout: float
    # TCP keepalive probes (both ends): first probe after this much silence, then every interval.
    keepalive_idle: float
    keepalive_interval: float
    keepalive_count: int
    # Unacknowledged data older than this drops the connection (both ends).
    tcp_user_timeout: float
    connect_timeout: float

    @classmethod
    def for_lease(cls, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> SessionLimits:
        """Defaults that clear a dead peer's transaction and locks well within one lease: its
        session is ended after a third of a lease idle in a transaction, and a dead link is noticed
        after about a third of a lease by keepalives or the user timeout. Lock waits may last half a
        lease, longer than a dead holder can keep its locks, so a waiter outlives the holder rather
        than failing first."""
        third = max(1.0, lease_seconds / 3)
        return cls(
            idle_in_transaction=third,
            lock_timeout=max(1.5, lease_seconds / 2),
            statement_timeout=max(5.0, lease_seconds),
            keepalive_idle=max(1.0, lease_seconds / 6),
            keepalive_interval=max(1.0, lease_seconds / 15),
            keepalive_count=3,
            tcp_user_timeout=third,
            connect_timeout=max(2.0, min(10.0, third)),
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionLimits:
        """The lease-derived defaults with the IMAGESTUDIO_DB_* settings that are set."""
        overrides: dict[str, float] = {}
        if settings.db_idle_in_transaction_seconds is not None:
            overrides["idle_in_transaction"] = settings.db_idle_in_transaction_seconds
        if settings.db_lock_timeout_seconds is not None:
            overrides["lock_timeout"] = settings.db_lock_timeout_seconds
        if settings.db_statement_timeout_seconds is not None:
            overrides["statement_timeout"] = settings.db_statement_timeout_seconds
        if settings.db_tcp_timeout_seconds is not None:
            tcp = settings.db_tcp_timeout_seconds
            overrides |= {"keepalive_idle": tcp / 2, "keepalive_interval": tcp / 6, "tcp_user_timeout": tcp}
        return replace(cls.for_lease(settings.lease_seconds), **overrides)

    def without_statement_timeout(self) -> SessionLimits:
        """For migrations, whose statements may rightly run long."""
        return replace(self, statement_timeout=0)

    def for_maintenance(self) -> SessionLimits:
        """For backup, restore, export and cleanup run by hand: long statements, and a snapshot held
        open while files are copied, are what they do. Keepalives and lock waits stay bounded."""
        return replace(self, statement_timeout=0, idle_in_transaction=0)

    def server_options(self) -> str:
        """The libpq `options` string setting the server-side limits for the session."""
        settings = {
            "idle_in_transaction_session_timeout": _ms(self.idle_in_transaction),
            "lock_timeout": _ms(self.lock_timeout),
            "statement_timeout": _ms(self.statement_timeout),
            "tcp_keepalives_idle": _whole_seconds(self.keepalive_idle),
            "tcp_keepalives_interval": _whole_seconds(self.keepalive_interval),
            "tcp_keepalives_count": self.keepalive_count,
            "tcp_user_timeout": _ms(self.tcp_user_timeout),
        }
        return " ".join(f"-c {name}={value}" for name, value in settings.items())

    def libpq_parameters(self) -> dict[str, str | int]:
        """Connection parameters for psycopg/libpq: client-side keepalives and timeouts, plus the
        server-side limits in `options`."""
        return {
            "connect_timeout": _whole_seconds(self.connect_timeout),
            "keepalives": 1,
            "keepalives_idle": _whole_seconds(self.keepalive_idle),
            "keepalives_interval": _whole_seconds(self.keepalive_interval),
            "keepalives_count": self.keepalive_count,
            "tcp_user_timeout": _ms(self.tcp_user_timeout),
            "options": self.server_options(),
        }


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def _whole_seconds(seconds: float) -> int:
    # libpq and the server take whole seconds here; 0 would mean "system default", so at least 1.
    return max(1, round(seconds))


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10, limits: SessionLimits | None = None) -> Engine:
    """An engine for `url`. PostgreSQL sessions carry `limits` (by default those for the default lease)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
        )
        writers = _writer_locks[engine] = WriterLock(SQLITE_BUSY_TIMEOUT_MS / 1000)
        _configure_sqlite(engine, writers)
        return engine
    return create_engine(
        url,
        echo=echo,
        connect_args=(limits or SessionLimits.for_lease()).libpq_parameters(),
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


class WriterLock:
    """One SQLite writer at a time in this process, owned by a database connection rather than a thread.

    Taken when a write transaction begins (before `BEGIN IMMEDIATE`) and given back when its
    connection returns to the pool, so a request whose transaction begins in one thread and
    commits in another queues here like the engine's writers do: the next writer goes on at once,
    instead of polling in SQLite's busy handler (sleeps of 1 to 100 ms). Other processes still meet
    on the busy timeout."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._free = threading.Condition()
        self._owner: object | None = None

    def acquire(self, owner: object) -> None:
        deadline = time.monotonic() + self.timeout
        with self._free:
            while self._owner is not None and self._owner is not owner:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    # Let BEGIN IMMEDIATE meet SQLite's own timeout and fail as it always did.
                    return
                self._free.wait(remaining)
            self._owner = owner

    def release(self, owner: object) -> None:
        with self._free:
            if self._owner is owner:
                self._owner = None
                self._free.notify()

    @property
    def held(self) -> bool:
        with self._free:
            return self._owner is not None


_writer_locks: weakref.WeakKeyDictionary[Engine, WriterLock] = weakref.WeakKeyDictionary()


def writer_lock(engine: Engine) -> WriterLock | None:
    """The writer lock of a SQLite engine made by make_engine (None for PostgreSQL)."""
    return _writer_locks.get(engine)


def _configure_sqlite(engine: Engine, writers: WriterLock) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's begin hook decide how transactions start, not pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # NORMAL is durable across application crashes in WAL mode; only an OS crash can lose the
        # last commits, which FULL would guard at a 15x cost per commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if mode == "IMMEDIATE":
            writers.acquire(connection.connection.dbapi_connection)
        connection.exec_driver_sql(f"BEGIN {mode}")

    def _give_back(dbapi_connection: Any, *_args: Any) -> None:
        writers.release(dbapi_connection)

    # A write transaction ends with its connection going back to the pool (or being dropped).
    for name in ("checkin", "close", "detach", "invalidate"):
        event.listen(engine, name, _give_back)


@dataclass(frozen=True)
class Database:
    """The engine plus two session factories: `read` for queries, `write` for anything that changes rows."""

    engine: Engine
    read: sessionmaker[Session]
    write: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction that commits on success and rolls back on error. On SQLite, writers
        of this process queue on one lock at `BEGIN IMMEDIATE` (see WriterLock)."""
        with self.write() as session, session.begin():
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.read() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def make_database(url: str, **engine_options: Any) -> Database:
    engine = make_engine(url, **engine_options)
    write_engine = engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) if is_sqlite(engine) else engine
    return Database(
        engine=engine,
        read=sessionmaker(bind=engine, expire_on_commit=False),
        write=sessionmaker(bind=write_engine, expire_on_commit=False),
    )
