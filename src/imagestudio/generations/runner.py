"""What a process starts to take part in the engine: the PostgreSQL notification listener (so it
hears about new work, events and cancels from other processes) and, when asked, a worker.

`imagestudio serve` starts one with settings.workers (0: listener only), `imagestudio worker` with
its --concurrency, `imagestudio generate` with one slot. A process that runs workers also delivers
the mail outbox when SMTP is configured (`send_mail=False` leaves that to other processes).
"""

from __future__ import annotations

import logging
from typing import Any

from imagestudio.container import Container
from imagestudio.generations.worker import Worker
from imagestudio.mail.sender import MailSender
from imagestudio.notify import PostgresListener

log = logging.getLogger(__name__)


class EngineRunner:
    def __init__(
        self,
        container: Container,
        *,
        concurrency: int,
        listen: bool = True,
        send_mail: bool | None = None,
        **worker_options: Any,
    ) -> None:
        self.container = container
        self.concurrency = concurrency
        self.hub = container.hub
        self.listen = listen and container.db.dialect == "postgresql"
        self.worker_options = worker_options
        self.listener: PostgresListener | None = None
        self.worker: Worker | None = None
        self.send_mail = (concurrency > 0 if send_mail is None else send_mail) and container.settings.mail_configured
        self.mail_sender: MailSender | None = None

    async def start(self) -> None:
        if self.listen:
            self.listener = PostgresListener(self.container.settings.resolved_database_url, self.hub)
            await self.listener.start()
        if self.concurrency > 0:
            self.worker = Worker(
                db=self.container.db,
                storage=self.container.storage,
                registry=self.container.registry,
                settings=self.container.settings,
                concurrency=self.concurrency,
                hub=self.hub,
                **self.worker_options,
            )
            await self.worker.start()
        if self.send_mail:
            self.mail_sender = MailSender(self.container.db, self.container.settings)
            await self.mail_sender.start()

    async def stop(self, grace: float = 10.0) -> None:
        if self.mail_sender is not None:
            await self.mail_sender.stop()
            self.mail_sender = None
        if self.worker is not None:
            await self.worker.stop(grace)
            self.worker = None
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
