"""The audit trail: who did what to which account, key, setting or backup, when, and from where."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from imagestudio.models.base import Base, created_column, id_column
from imagestudio.models.types import JSONType


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "created_at"), Index(None, "action", "created_at"), Index(None, "actor_id"))

    id: Mapped[uuid.UUID] = id_column()
    created_at: Mapped[datetime] = created_column()
    # Who acted (null for the system, the command line, or an unknown account); kept as text too,
    # so the trail still reads after the account is deleted.
    actor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_email: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict] = mapped_column(JSONType, nullable=False, default=dict)
