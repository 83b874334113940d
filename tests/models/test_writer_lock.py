"""SQLite writers of one process queue on the process's writer lock, not on SQLite's busy handler:
with the busy handler turned off (timeout 0), any writer that met another's lock in SQLite would
fail at once with "database is locked". Request transactions begin in one thread and end in
another, so the lock belongs to the connection, not to a thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from imagestudio.db import Database, make_database, writer_lock

WRITERS = 6
TRANSACTIONS = 30


def _without_busy_handler(database: Database) -> Database:
    @event.listens_for(database.engine, "connect")
    def _no_wait(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    return database


def _database(tmp_path: Path) -> Database:
    database = _without_busy_handler(make_database(f"sqlite:///{tmp_path / 'lock.db'}"))
    with database.writing() as session:
        session.execute(text("CREATE TABLE hits (writer INTEGER, n INTEGER)"))
    return database


def _commit_and_close(session: Session) -> None:
    session.commit()
    session.close()


def test_writers_whose_transactions_end_in_another_thread_queue_instead_of_failing(tmp_path: Path) -> None:
    database = _database(tmp_path)
    enders = ThreadPoolExecutor(WRITERS)

    def request_like(writer: int) -> None:
        for n in range(TRANSACTIONS):
            session = database.write()
            session.execute(text("INSERT INTO hits VALUES (:w, :n)"), {"w": writer, "n": n})
            # The commit and the close happen in another thread, as a request's do.
            enders.submit(_commit_and_close, session).result()

    def engine_like(writer: int) -> None:
        for n in range(TRANSACTIONS):
            with database.writing() as session:
                session.execute(text("INSERT INTO hits VALUES (:w, :n)"), {"w": writer, "n": n})

    try:
        with ThreadPoolExecutor(WRITERS) as pool:
            futures = [pool.submit(request_like if i % 2 else engine_like, i) for i in range(WRITERS)]
            for future in futures:
                future.result()
    finally:
        enders.shutdown()
    with database.reading() as session:
        assert session.scalar(text("SELECT count(*) FROM hits")) == WRITERS * TRANSACTIONS
    database.dispose()


def test_a_failed_write_gives_the_lock_back(tmp_path: Path) -> None:
    database = _database(tmp_path)
    writers = writer_lock(database.engine)
    assert writers is not None and not writers.held
    session = database.write()
    session.execute(text("INSERT INTO hits VALUES (1, 1)"))
    assert writers.held
    session.rollback()
    session.close()
    assert not writers.held
    done = threading.Event()

    def other() -> None:
        with database.writing() as writer:
            writer.execute(text("INSERT INTO hits VALUES (2, 2)"))
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(30)
    assert done.is_set()
    with database.reading() as reader:
        assert reader.scalar(text("SELECT count(*) FROM hits")) == 1
    database.dispose()
