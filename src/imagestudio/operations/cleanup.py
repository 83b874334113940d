"""Keeping a studio tidy: the passes the maintenance loop runs (one process at a time) and
`imagestudio cleanup [--dry-run]` runs by hand.

1. Expired logins are deleted.
2. Uploads that nothing uses (no generation read them, no message attached them, no session shows
   them) are removed once older than IMAGESTUDIO_UPLOAD_RETENTION_HOURS (24).
3. Stored objects that no row names (a crashed writer's, a late partitioned worker's) are removed
   once older than IMAGESTUDIO_ORPHAN_GRACE_SECONDS, so an object whose row is being committed
   right now is never touched.
4. Sessions past their `expires_at` are archived; used, revoked or expired links and finished mail
   older than 30 days are deleted.
5. With IMAGESTUDIO_RETENTION_DAYS set, the outputs of generations finished longer ago are
   removed, except in sessions that belong to a project; the generation rows (prompts, settings,
   lineage) stay. Off by default.
Each pass is its own short transaction; files go only after the rows that named them are gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.kit import counters
from imagestudio.models import (
    AccountToken,
    Asset,
    AuthSession,
    ChatSession,
    Generation,
    GenerationInput,
    MessageAttachment,
    OutboxMail,
    RunStatus,
    UiGeneration,
    rules,
)
from imagestudio.models.enums import MailStatus
from imagestudio.models.types import utcnow
from imagestudio.storage.base import ObjectNotFound, Storage
from imagestudio.storage.local import TEMP_PREFIX

log = logging.getLogger(__name__)

_FINAL = (RunStatus.succeeded.value, RunStatus.failed.value, RunStatus.canceled.value)


@dataclass
class CleanupReport:
    dry_run: bool
    expired_logins: int = 0
    stale_uploads: list[str] = field(default_factory=list)
    orphan_objects: list[str] = field(default_factory=list)
    expired_outputs: list[str] = field(default_factory=list)
    archived_sessions: int = 0
    spent_records: int = 0

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        return [
            f"{verb} {self.expired_logins} expired logins",
            f"{verb} {len(self.stale_uploads)} unused uploads",
            f"{verb} {len(self.orphan_objects)} stored objects no row names",
            f"{verb} {len(self.expired_outputs)} outputs past retention",
            f"{'would archive' if self.dry_run else 'archived'} {self.archived_sessions} expired sessions",
            f"{verb} {self.spent_records} spent links and sent mails older than {SPENT_RECORDS_DAYS} days",
        ]


def _expired_logins(db: Session, now: datetime, dry_run: bool) -> int:
    condition = or_(AuthSession.expires_at < now, AuthSession.idle_expires_at < now)
    if dry_run:
        return len(db.scalars(select(AuthSession.id).where(condition)).all())
    return db.execute(delete(AuthSession).where(condition)).rowcount or 0


def _archive_expired_sessions(db: Session, now: datetime, dry_run: bool) -> int:
    condition = (ChatSession.expires_at < now, ChatSession.archived_at.is_(None))
    if dry_run:
        return len(db.scalars(select(ChatSession.id).where(*condition)).all())
    return db.execute(update(ChatSession).where(*condition).values(archived_at=now)).rowcount or 0


# Used, revoked or expired links and finished mail are kept this long (for support questions), then go.
SPENT_RECORDS_DAYS = 30


def _spent_records(db: Session, now: datetime, dry_run: bool) -> int:
    cutoff = now - timedelta(days=SPENT_RECORDS_DAYS)
    tokens = or_(AccountToken.used_at < cutoff, AccountToken.revoked_at < cutoff, AccountToken.expires_at < cutoff)
    mail = (OutboxMail.status.in_((MailStatus.sent.value, MailStatus.failed.value)), OutboxMail.created_at < cutoff)
    if dry_run:
        return len(db.scalars(select(AccountToken.id).where(tokens)).all()) + len(
            db.scalars(select(OutboxMail.id).where(*mail)).all()
        )
    removed = db.execute(delete(AccountToken).where(tokens)).rowcount or 0
    return removed + (db.execute(delete(OutboxMail).where(*mail)).rowcount or 0)


def _unused_uploads(db: Session, cutoff: datetime) -> list[Asset]:
    used_as_input = exists().where(GenerationInput.asset_id == Asset.id)
    attached = exists().where(MessageAttachment.asset_id == Asset.id)
    shown = exists().where(ChatSession.thumbnail_asset_id == Asset.id)
    return list(
        db.scalars(
            select(Asset).where(Asset.kind == "upload", Asset.created_at < cutoff, ~used_as_input, ~attached, ~shown)
        )
    )


def _expired_outputs(db: Session, cutoff: datetime) -> list[Asset]:
    in_project = exists().where(ChatSession.id == Generation.session_id, ChatSession.project_id.is_not(None))
    return list(
        db.scalars(
            select(Asset)
            .join(Generation, Generation.id == Asset.generation_id)
            .where(
                Asset.kind == "output",
                Generation.status.in_(_FINAL),
                Generation.completed_at < cutoff,
                ~in_project,
            )
        )
    )


def _keys(assets: list[Asset]) -> list[str]:
    return [key for asset in assets for key in (asset.storage_key, asset.thumbnail_key) if key]


def _delete_objects(storage: Storage, keys: list[str]) -> None:
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # one unreadable object must not stop the rest; the next run retries
            log.exception("cleanup: could not delete %s", key)


def _named_keys(db: Session) -> set[str]:
    named: set[str] = set()
    for storage_key, thumbnail_key in db.execute(select(Asset.storage_key, Asset.thumbnail_key)):
        named.add(storage_key)
        if thumbnail_key:
            named.add(thumbnail_key)
    # UI code is stored without an asset row; its generation names it.
    named.update(db.scalars(select(UiGeneration.storage_key).where(UiGeneration.storage_key.is_not(None))))
    return named


def _orphans(named: set[str], storage: Storage, cutoff: datetime) -> list[str]:
    orphans = []
    for key in storage.list():
        if key in named or TEMP_PREFIX in key:
            continue  # temporary files are the worker's own sweep
        try:
            if storage.modified_at(key) < cutoff:
                orphans.append(key)
        except ObjectNotFound:
            continue
    return orphans


CLEANUP_BUCKET = "maintenance:cleanup"


def run_if_due(
    database: Database, storage: Storage, settings: Settings, *, now: datetime | None = None
) -> CleanupReport | None:
    """Run the passes unless another process already ran them in this interval (one counter upsert
    decides, so any number of workers agree without a lock). None when it was not this one's turn."""
    now = now or utcnow()
    interval = max(60, int(settings.cleanup_interval_seconds))
    with database.writing() as db:
        turn = counters.add(db, CLEANUP_BUCKET, now, interval, limit=1)
        db.commit()
    if turn is None:
        return None
    return run_cleanup(database, storage, settings, now=now)


def run_cleanup(
    database: Database, storage: Storage, settings: Settings, *, dry_run: bool = False, now: datetime | None = None
) -> CleanupReport:
    now = now or utcnow()
    report = CleanupReport(dry_run=dry_run)
    with database.writing() as db:
        report.expired_logins = _expired_logins(db, now, dry_run)
        report.archived_sessions = _archive_expired_sessions(db, now, dry_run)
        report.spent_records = _spent_records(db, now, dry_run)
        db.commit()

    with database.writing() as db:
        uploads = _unused_uploads(db, now - timedelta(hours=settings.upload_retention_hours))
        report.stale_uploads = [str(asset.id) for asset in uploads]
        keys = _keys(uploads)
        if not dry_run:
            for asset in uploads:
                db.delete(asset)
            db.commit()
    if not dry_run:
        _delete_objects(storage, keys)

    if settings.retention_days is not None:
        with database.writing() as db:
            outputs = _expired_outputs(db, now - timedelta(days=settings.retention_days))
            report.expired_outputs = [str(asset.id) for asset in outputs]
            keys = _keys(outputs)
            if not dry_run:
                for asset in outputs:
                    rules.output_removed(db, asset)
                    db.delete(asset)
                db.commit()
        if not dry_run:
            _delete_objects(storage, keys)

    # The listing happens outside the transaction: it can take long on a big bucket, and the
    # database ends sessions that sit idle inside one.
    with database.reading() as db:
        named = _named_keys(db)
    report.orphan_objects = _orphans(named, storage, now - timedelta(seconds=settings.orphan_grace_seconds))
    if not dry_run:
        _delete_objects(storage, report.orphan_objects)
    for line in report.lines():
        log.info("cleanup: %s", line)
    return report
