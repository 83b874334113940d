"""The audit trail: append what happened, list it for administrators.

Recorded actions (stable names): `auth.setup`, `auth.signup`, `auth.login`, `auth.login_failed`,
`auth.logout`, `auth.password_changed`, `api_key.created`, `api_key.revoked`, `user.created`,
`user.updated` (with the fields changed, quota and limit changes included), `backup.created`,
`backup.restored`, `providers.refreshed`, `invitation.created`, `invitation.revoked`,
`invitation.accepted`, `auth.password_reset` (a reset link used; asking for one is not recorded, so
the trail never tells which addresses have accounts), `auth.email_changed`,
`user.reset_link_created`. A row is written in the transaction of the change it records, so the
trail never claims a change that was rolled back; a failed sign-in is committed with its throttle
count.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.kit.pagination import keyset_page
from imagestudio.models import AuditEvent, User

ACTIONS = (
    "auth.setup",
    "auth.signup",
    "auth.login",
    "auth.login_failed",
    "auth.logout",
    "auth.password_changed",
    "api_key.created",
    "api_key.revoked",
    "user.created",
    "user.updated",
    "backup.created",
    "backup.restored",
    "providers.refreshed",
    "invitation.created",
    "invitation.revoked",
    "invitation.accepted",
    "auth.password_reset",
    "auth.email_changed",
    "user.reset_link_created",
    "provider_key.stored",
    "provider_key.deleted",
    "provider_key.policy_changed",
    "budget.changed",
)


def record(
    db: Session,
    action: str,
    *,
    actor: User | None = None,
    actor_email: str | None = None,
    target_type: str | None = None,
    target_id: object = None,
    address: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    assert action in ACTIONS, action
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        actor_email=(actor.email if actor is not None else actor_email),
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        address=address[:64] if address else None,
        details=dict(details or {}),
    )
    db.add(event)
    return event


def list_events(
    db: Session,
    *,
    action: str | None,
    actor_id: uuid.UUID | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    cursor: str | None,
) -> tuple[Sequence[AuditEvent], str | None]:
    statement = select(AuditEvent)
    if action is not None:
        # "auth" matches every auth.* action; "auth.login" only that one.
        statement = statement.where(
            AuditEvent.action == action if "." in action else AuditEvent.action.startswith(action + ".")
        )
    if actor_id is not None:
        statement = statement.where(AuditEvent.actor_id == actor_id)
    if since is not None:
        statement = statement.where(AuditEvent.created_at >= since)
    if until is not None:
        statement = statement.where(AuditEvent.created_at < until)
    return keyset_page(db, statement, AuditEvent.created_at, AuditEvent.id, limit, cursor)
