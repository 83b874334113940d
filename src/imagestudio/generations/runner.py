"""What a process starts to take part in the engine: the PostgreSQL notification listener (so it
hears about new work, events and cancels from other processes) and, when asked, a worker.

`imagestudio serve` starts one with settings.workers (0: listener only), `imagestudio worker` with
its --concurrency, `imagestudio generate` with one slot.
"""

from __future__ import annotations

import logging
from typing import Any

from imagestudio.container import Container
from imagestudio.generations.worker import Worker
from imagestudio.notify import PostgresListener

log = logging.getLogger(__name__)


class EngineRunner:
    def __init__(
        self,
        container: Container,
        *,
        concurrency: int,
        listen: bool = True,
        **worker_options: Any,
    ) -> None:
        self.container = container
        self.concurrency = concurrency
        self.hub = container.hub
        self.listen = listen and container.db.dialect == "postgresql"
        self.worker_options = worker_options
        self.listener: PostgresListener | None = None
        self.worker: Worker | None = None

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

    async def stop(self, grace: float = 10.0) -> None:
        if self.worker is not None:
            await self.worker.stop(grace)
            self.worker = None
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None
