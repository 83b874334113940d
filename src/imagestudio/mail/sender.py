"""Delivery: claim due mail from the outbox and hand it to the SMTP server with the standard library.

`deliver_due` does one round (tests and the CLI call it directly); `MailSender` runs rounds in the
background of any process that runs the engine, every settings.mail_poll_seconds. A slow or failing
server only delays mail: every failure is recorded on the message, which is retried with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import uuid
from dataclasses import dataclass

from imagestudio.config import Settings, SmtpServer
from imagestudio.db import Database
from imagestudio.mail import outbox
from imagestudio.mail.compose import build_message
from imagestudio.models.types import utcnow

log = logging.getLogger(__name__)

BATCH_SIZE = 20


@dataclass
class Round:
    sent: int = 0
    failed: int = 0


def connect(server: SmtpServer, timeout: float) -> smtplib.SMTP:
    """An open, greeted (and, when asked, encrypted and authenticated) SMTP connection."""
    context = ssl.create_default_context()
    connection: smtplib.SMTP
    if server.implicit_tls:
        connection = smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
    else:
        connection = smtplib.SMTP(server.host, server.port, timeout=timeout)
    try:
        connection.ehlo()
        if server.starttls:
            connection.starttls(context=context)
            connection.ehlo()
        if server.username:
            connection.login(server.username, server.password or "")
    except BaseException:
        connection.close()
        raise
    return connection


def describe_failure(error: Exception) -> str:
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refusals = "; ".join(f"{code} {reply.decode(errors='replace')}" for code, reply in error.recipients.values())
        return f"recipient refused: {refusals}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"SMTP {error.smtp_code}: {error.smtp_error.decode(errors='replace')}"
    return f"{error.__class__.__name__}: {error}"


def deliver_due(database: Database, settings: Settings, *, owner: str | None = None) -> Round:
    """Send the mail that is due now; answers how many were sent and how many attempts failed."""
    server = settings.smtp_server
    done = Round()
    if server is None:
        return done
    owner = owner or f"mail-{uuid.uuid4().hex[:12]}"
    # The claim outlives any honest attempt: connect, greet, TLS, login and DATA each have the timeout.
    claim_seconds = settings.smtp_timeout_seconds * 6 + 60
    with database.writing() as db:
        outbox.fail_abandoned(db, now=utcnow(), max_attempts=settings.mail_max_attempts)
        batch = outbox.claim_due(
            db,
            owner=owner,
            now=utcnow(),
            limit=BATCH_SIZE,
            claim_seconds=claim_seconds,
            max_attempts=settings.mail_max_attempts,
        )
    if not batch:
        return done
    connection: smtplib.SMTP | None = None
    try:
        for mail in batch:
            message = build_message(
                settings, to_address=mail.to_address, subject=mail.subject, text=mail.text_body, html=mail.html_body
            )
            try:
                if connection is None:
                    connection = connect(server, settings.smtp_timeout_seconds)
                connection.send_message(message)
            except (smtplib.SMTPException, OSError) as error:
                failure = describe_failure(error)
                log.warning("mail %s to the SMTP server failed (attempt %s): %s", mail.id, mail.attempts, failure)
                with database.writing() as db:
                    outbox.mark_failed_attempt(db, mail, failure, owner=owner, now=utcnow(), settings=settings)
                done.failed += 1
                # A refused message leaves the connection usable; anything else may not have.
                if not isinstance(error, smtplib.SMTPRecipientsRefused | smtplib.SMTPDataError) and connection:
                    _close(connection)
                    connection = None
                continue
            with database.writing() as db:
                outbox.mark_sent(db, mail.id, owner=owner, now=utcnow())
            done.sent += 1
    finally:
        if connection is not None:
            _close(connection)
    return done


def _close(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()


class MailSender:
    """Rounds of `deliver_due` in a background task until stopped."""

    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings
        self.owner = f"mail-{uuid.uuid4().hex[:12]}"
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="imagestudio-mail")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping.set()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                done = await asyncio.to_thread(deliver_due, self.database, self.settings, owner=self.owner)
            except Exception:
                log.exception("a round of mail delivery failed")
                done = Round()
            if done.sent or done.failed:
                continue  # a full batch may have more behind it
            try:
                await asyncio.wait_for(self._stopping.wait(), timeout=self.settings.mail_poll_seconds)
            except TimeoutError:
                pass
