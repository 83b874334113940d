"""Uses counted in memory and written in batches: many uses of a row, one UPDATE per flush.

For bookkeeping that no decision depends on (an API key's `usage_count` and `last_used_at`): writing
it on every request would cost every request a write transaction. A process loses at most the uses
of its last `interval` seconds if it dies; counts that enforce a limit never go through here.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PendingUse:
    count: int
    last_at: datetime


class PendingUses:
    """Uses per id since the last flush. Thread-safe; `add` says when a flush is due, and to one caller only."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._pending: dict[uuid.UUID, PendingUse] = {}
        self._flushed_at = float("-inf")

    def add(self, key: uuid.UUID, at: datetime) -> bool:
        """Count one use; True when `interval` has passed since the last flush (the caller flushes)."""
        with self._lock:
            earlier = self._pending.get(key)
            self._pending[key] = (
                PendingUse(earlier.count + 1, max(earlier.last_at, at)) if earlier else PendingUse(1, at)
            )
            now = time.monotonic()
            if now - self._flushed_at < self.interval:
                return False
            # The caller that sees a flush due takes it; the others keep counting.
            self._flushed_at = now
            return True

    def take(self) -> dict[uuid.UUID, PendingUse]:
        """Everything counted so far, leaving nothing pending."""
        with self._lock:
            taken, self._pending = self._pending, {}
            return taken

    def put_back(self, uses: dict[uuid.UUID, PendingUse]) -> None:
        """Return uses a failed flush did not write, so the next flush writes them."""
        with self._lock:
            for key, use in uses.items():
                now = self._pending.get(key)
                self._pending[key] = PendingUse(use.count + now.count, max(use.last_at, now.last_at)) if now else use

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)
