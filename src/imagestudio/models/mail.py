"""The mail outbox: messages waiting for the SMTP server, and what became of them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from imagestudio.models.base import Base, created_column, id_column
from imagestudio.models.enums import MailStatus, enum_check


class OutboxMail(Base):
    """One message, queued in the same transaction as the change that sends it.

    A sender claims a due message by setting `claimed_by` and `claim_expires_at` in one conditional
    UPDATE, so two processes never send it at once; a claim that outlives its sender expires and the
    message becomes due again. Bodies are cleared once the message is settled: they hold links.
    """

    __tablename__ = "mail_outbox"
    __table_args__ = (
        enum_check("status", MailStatus),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = id_column()
    # What the message is (invitation, password_reset, ...): for operators, never for logic.
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    to_address: Mapped[str] = mapped_column(String(320), nullable=False)
    subject: Mapped[str] = mapped_column(String(300), nullable=False)
    text_body: Mapped[str] = mapped_column(Text, nullable=False)
    html_body: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default=MailStatus.queued.value)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = created_column()
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_column()
    sent_at: Mapped[datetime | None]
