"""Keeps the providers table's model lists current: once at start, then every so often.

Runs in every long-lived process (`imagestudio serve`, `imagestudio worker`) so providers that only
a worker registers are listed too. A refresh that fails keeps the last good list and records why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from imagestudio.db import Database
from imagestudio.providers.registry import ProviderRegistry

log = logging.getLogger(__name__)


class ModelRefresher:
    def __init__(self, registry: ProviderRegistry, db: Database, *, interval: float) -> None:
        self._registry = registry
        self._db = db
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        # Set once the first pass (at start) has been stored.
        self.first_pass = asyncio.Event()

    def start(self) -> None:
        """Refresh in the background, so a slow provider never delays start-up."""
        self._task = asyncio.create_task(self._run(), name="provider-model-refresh")

    async def _run(self) -> None:
        while True:
            try:
                await self._registry.refresh_and_sync(self._db)
            except Exception:  # a database hiccup must not end the loop
                log.exception("refreshing provider models failed")
            self.first_pass.set()
            if self._interval <= 0:
                return
            await asyncio.sleep(self._interval)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
