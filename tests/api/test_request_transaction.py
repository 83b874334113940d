"""The request's transaction (DbSession): a read request's changes never stay, and a request cancelled
while its transaction ends (its client gone) still ends it and frees its connection."""

from __future__ import annotations

import uuid

import anyio
from sqlalchemy import select

from imagestudio.accounts.deps import CurrentUser, DbSession, _end, _in_thread
from imagestudio.models import User
from tests.api.helpers import API


def test_a_read_requests_changes_are_rolled_back(accounts, container) -> None:
    alice = accounts.make()

    @alice.app.get(f"{API}/test-rename")
    def rename(user: CurrentUser, db: DbSession) -> dict:
        db.get(User, user.id).display_name = "changed by a read"
        db.flush()
        return {}

    assert alice.client.get(f"{API}/test-rename").status_code == 200
    with container.db.reading() as db:
        assert db.scalar(select(User.display_name).where(User.id == uuid.UUID(alice.id))) == "Test"


def test_a_cancelled_request_still_ends_its_transaction(accounts, container) -> None:
    alice = accounts.make()
    session = container.db.write()
    try:
        session.get(User, uuid.UUID(alice.id)).display_name = "never kept"
        session.flush()
        assert session.in_transaction()

        async def cancelled_then_ended() -> None:
            with anyio.CancelScope() as scope:
                scope.cancel()
                await _in_thread(_end, session, commit=False)

        anyio.run(cancelled_then_ended)
        assert not session.in_transaction()
    finally:
        session.close()
    with container.db.reading() as db:
        assert db.scalar(select(User.display_name).where(User.id == uuid.UUID(alice.id))) == "Test"
