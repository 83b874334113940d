"""Writes the API key uses a process counted in memory: every interval while it serves, and once
more when it stops, so uses end up in the database within about one interval."""

from __future__ import annotations

import asyncio
import logging

from imagestudio.accounts.service import flush_api_key_uses
from imagestudio.db import Database
from imagestudio.kit.pending import PendingUses
from imagestudio.kit.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class KeyUseWriter:
    def __init__(self, database: Database, uses: PendingUses) -> None:
        self.database = database
        self.uses = uses
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.uses.interval > 0:
            self._task = asyncio.create_task(self._run(), name="api-key-uses")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.uses.interval)
            await self._write()

    async def _write(self) -> None:
        if not len(self.uses):
            return
        try:
            await asyncio.to_thread(flush_api_key_uses, self.database, self.uses)
        except Exception:
            # Kept in memory (put back by the flush) and tried again next round.
            log.exception("could not write API key uses")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None
        await self._write()
