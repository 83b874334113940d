"""The quota counter is one conditional upsert, never a read followed by a write.

Two transactions take from a quota of one, interleaved deterministically: the first has counted and
not yet committed when the second starts; the first commits just as the second sends its INSERT. A
counter that reads before it writes would, on PostgreSQL, see the uncommitted zero and count past
the quota; on SQLite its read snapshot would be stale when it writes, and the write would fail. The
conditional upsert refuses the second request cleanly on both.

The transactions here begin deferred (the way a read-first caller's would), so SQLite does not
serialize them up front as a request's BEGIN IMMEDIATE does.
"""

from __future__ import annotations

import threading

from sqlalchemy import event, select

from imagestudio.db import Database
from imagestudio.generations import limits
from imagestudio.kit.errors import ApiError
from imagestudio.models import RateCounter, User
from tests import factories

BOUND_SECONDS = 30.0
COUNTER_INSERT = f"INSERT INTO {RateCounter.__tablename__}".upper()


def test_a_second_taker_is_refused_not_counted_past_the_quota(db: Database, settings) -> None:
    with db.writing() as session:
        user = factories.make_user(session, daily_image_quota=1, rate_per_minute=None)
    settings.default_rate_per_minute = None
    first_counted = threading.Event()
    second_inserting = threading.Event()
    outcomes: dict[str, object] = {}

    def first() -> None:
        with db.read() as session:
            try:
                limits.consume(session, user, settings, 1)
            except Exception as error:  # reported by the assertion below
                outcomes["first"] = repr(error)
                return
            finally:
                first_counted.set()  # never leave the second waiting, whatever happened
            assert second_inserting.wait(BOUND_SECONDS)
            session.commit()
        outcomes["first"] = "counted"

    def second() -> None:
        assert first_counted.wait(BOUND_SECONDS)
        with db.read() as session:
            connection = session.connection()

            def before_execute(_conn, _cursor, statement: str, *_args) -> None:
                if statement.lstrip().upper().startswith(COUNTER_INSERT):
                    second_inserting.set()

            event.listen(connection, "before_cursor_execute", before_execute)
            try:
                limits.consume(session, user, settings, 1)
                session.commit()
                outcomes["second"] = "counted"
            except ApiError as error:
                outcomes["second"] = error.code
            except Exception as error:  # reported by the assertion below
                outcomes["second"] = repr(error)
            finally:
                second_inserting.set()  # never leave the first waiting, whatever happened

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND_SECONDS)
    assert outcomes == {"first": "counted", "second": "quota_exceeded"}
    with db.reading() as session:
        assert session.scalars(select(RateCounter.hits)).all() == [1]
        assert session.get(User, user.id) is not None
