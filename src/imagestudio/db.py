"""Database engine and session factories.

SQLite is set up for a server: WAL, foreign keys, a busy timeout, and write transactions that
start with BEGIN IMMEDIATE so two writers queue on the busy timeout instead of failing on a lock
upgrade. Read transactions stay DEFERRED so readers never block writers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
# Execution option read by the begin hook: "IMMEDIATE" for sessions that will write.
SQLITE_BEGIN_OPTION = "sqlite_begin"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
        )
        _configure_sqlite(engine)
        return engine
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def _configure_sqlite(engine: Engine) -> None:
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
        connection.exec_driver_sql(f"BEGIN {mode}")


@dataclass(frozen=True)
class Database:
    """The engine plus two session factories: `read` for queries, `write` for anything that changes rows."""

    engine: Engine
    read: sessionmaker[Session]
    write: sessionmaker[Session]
    # SQLite takes one writer at a time. Writers of this process queue on this lock, which hands
    # over at once, rather than on SQLite's busy handler, which polls in sleeps of 1 to 100 ms.
    # Other processes still meet on the busy timeout. None on PostgreSQL.
    write_lock: threading.RLock | None = field(default=None, compare=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A write transaction that commits on success and rolls back on error."""
        if self.write_lock is None:
            with self.write() as session, session.begin():
                yield session
            return
        with self.write_lock, self.write() as session, session.begin():
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
        write_lock=threading.RLock() if is_sqlite(engine) else None,
    )
