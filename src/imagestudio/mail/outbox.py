"""The outbox: mail is queued in the transaction of the change that sends it, and settled by a sender.

A message is claimed with one conditional UPDATE (its claim must be free or expired), so of two
processes only one sends it; its attempt is counted at the claim, so a sender that dies mid-send still
uses one up. Every settle is fenced by the claim, so a sender whose claim expired changes nothing.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from imagestudio.config import Settings
from imagestudio.mail.compose import render
from imagestudio.models import MailStatus, OutboxMail
from imagestudio.models.types import utcnow

# Retry delays double from settings.mail_retry_seconds up to this.
MAX_RETRY_DELAY = timedelta(hours=1)
ERROR_MAX_LENGTH = 2000


def enqueue(db: Session, settings: Settings, *, to_address: str, kind: str, **context: object) -> OutboxMail:
    """Render a `kind` of mail and queue it for to_address; it is sent once the transaction commits."""
    rendered = render(settings, kind, **context)
    now = utcnow()
    mail = OutboxMail(
        kind=kind,
        to_address=to_address,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        status=MailStatus.queued.value,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    db.add(mail)
    db.flush()
    return mail


def _claim_free(now: datetime):
    return or_(OutboxMail.claimed_by.is_(None), OutboxMail.claim_expires_at < now)


def claim_due(
    db: Session, *, owner: str, now: datetime, limit: int, claim_seconds: float, max_attempts: int
) -> list[OutboxMail]:
    """Claim up to `limit` due messages for `owner`; answers the ones this caller won."""
    candidates = db.scalars(
        select(OutboxMail.id)
        .where(
            OutboxMail.status == MailStatus.queued.value,
            OutboxMail.next_attempt_at <= now,
            OutboxMail.attempts < max_attempts,
            _claim_free(now),
        )
        .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
        .limit(limit)
    ).all()
    claimed: list[uuid.UUID] = []
    for mail_id in candidates:
        # Re-checked by the UPDATE itself: on PostgreSQL a concurrent claimer waits for the row lock
        # and then finds the claim taken; on SQLite writers take turns.
        result = db.execute(
            update(OutboxMail)
            .where(
                OutboxMail.id == mail_id,
                OutboxMail.status == MailStatus.queued.value,
                OutboxMail.attempts < max_attempts,
                _claim_free(now),
            )
            .values(
                claimed_by=owner,
                claim_expires_at=now + timedelta(seconds=claim_seconds),
                attempts=OutboxMail.attempts + 1,
            )
        )
        if result.rowcount == 1:
            claimed.append(mail_id)
    if not claimed:
        return []
    return list(db.scalars(select(OutboxMail).where(OutboxMail.id.in_(claimed)).order_by(OutboxMail.id)))


def mark_sent(db: Session, mail_id: uuid.UUID, *, owner: str, now: datetime) -> bool:
    """Record a delivery; the bodies (which hold single-use links) are not kept. False: the claim was lost."""
    result = db.execute(
        update(OutboxMail)
        .where(OutboxMail.id == mail_id, OutboxMail.claimed_by == owner)
        .values(
            status=MailStatus.sent.value,
            sent_at=now,
            claimed_by=None,
            claim_expires_at=None,
            last_error=None,
            text_body="",
            html_body="",
        )
    )
    return result.rowcount == 1


def retry_delay(settings: Settings, attempts: int) -> timedelta:
    delay = timedelta(seconds=settings.mail_retry_seconds * 2 ** max(0, attempts - 1))
    return min(delay, MAX_RETRY_DELAY)


def mark_failed_attempt(
    db: Session, mail: OutboxMail, error: str, *, owner: str, now: datetime, settings: Settings
) -> bool:
    """Record a failed attempt: due again after a backoff, or failed for good once attempts are spent."""
    values: dict[str, object] = {"claimed_by": None, "claim_expires_at": None, "last_error": error[:ERROR_MAX_LENGTH]}
    if mail.attempts >= settings.mail_max_attempts:
        values.update(status=MailStatus.failed.value, text_body="", html_body="")
    else:
        values["next_attempt_at"] = now + retry_delay(settings, mail.attempts)
    result = db.execute(
        update(OutboxMail).where(OutboxMail.id == mail.id, OutboxMail.claimed_by == owner).values(**values)
    )
    return result.rowcount == 1


def fail_abandoned(db: Session, *, now: datetime, max_attempts: int) -> int:
    """Messages whose last attempt's sender vanished with its claim, with no attempts left, fail for good."""
    result = db.execute(
        update(OutboxMail)
        .where(
            OutboxMail.status == MailStatus.queued.value,
            OutboxMail.attempts >= max_attempts,
            OutboxMail.claim_expires_at < now,
        )
        .values(
            status=MailStatus.failed.value,
            claimed_by=None,
            claim_expires_at=None,
            last_error="The sender stopped during the last attempt.",
            text_body="",
            html_body="",
        )
    )
    return result.rowcount
