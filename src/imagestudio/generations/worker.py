"""The worker's dispatcher: claims generations and hands them to the job runner, renews their leases,
and runs the maintenance (reaping expired leases, sweeping leftovers).

One asyncio Worker runs up to `concurrency` generations at once. Database calls run on a small
thread pool (one thread on SQLite, whose writers are serialized anyway, so they never meet on the
busy timeout); decoding, encoding and storage run on another, off the event loop. Per generation
the hot path is three transactions: the claim (shared by a batch), nothing while rendering (progress
is throttled and the final step rides along with the result), and the final one recording assets,
events and status together. What happens to one generation is in `jobs.py`; how its outputs are
written is in `outputs.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from imagestudio.accounts import provider_keys
from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations import queue
from imagestudio.generations.events import PROGRESS_INTERVAL_SECONDS, ProgressThrottle
from imagestudio.generations.jobs import Job, JobRunner, Slot
from imagestudio.generations.outputs import OutputWriter
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.kit import metrics
from imagestudio.language import LanguageRegistry
from imagestudio.notify import NotificationHub
from imagestudio.operations import cleanup
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.storage.base import Storage

log = logging.getLogger(__name__)
T = TypeVar("T")


class Worker:
    """Runs generations from the queue until stopped. Start with `await worker.start()`, stop with
    `await worker.stop()` (finishes in-flight work within the grace period, hands the rest back)."""

    def __init__(
        self,
        *,
        db: Database,
        storage: Storage,
        registry: ProviderRegistry,
        settings: Settings,
        hub: NotificationHub,
        concurrency: int = 1,
        worker_id: str | None = None,
        poll_interval: float = 1.0,
        claim_batch: int | None = None,
        progress_interval: float = PROGRESS_INTERVAL_SECONDS,
        reap_interval: float | None = None,
        backoff_base: float = queue.BACKOFF_BASE_SECONDS,
        io_threads: int | None = None,
        language: LanguageRegistry | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.db = db
        self.storage = storage
        self.registry = registry
        # Language models write captions, prompts and titles; their jobs share the queue with images.
        self.language = language or LanguageRegistry()
        self.settings = settings
        self.concurrency = concurrency
        self.hub = hub
        self.worker_id = worker_id or queue.new_worker_id()
        self.poll_interval = poll_interval
        self.claim_batch = claim_batch or concurrency
        self.progress_interval = progress_interval
        self.lease_seconds = settings.lease_seconds
        self.reap_interval = reap_interval or min(10.0, max(0.2, self.lease_seconds / 2))
        self.backoff_base = backoff_base
        self._db_pool = ThreadPoolExecutor(
            max_workers=1 if db.dialect == "sqlite" else min(4, concurrency + 1),
            thread_name_prefix="imagestudio-db",
        )
        # Inputs, the final hop of each generation, deletes and sweeps. Never waits on itself.
        self._io_pool = ThreadPoolExecutor(max_workers=2 * concurrency + 2, thread_name_prefix="imagestudio-io")
        # Encoding and uploading single outputs, submitted from _io_pool threads (a separate pool, so
        # a thread waiting on its uploads can never starve them).
        self._put_pool = ThreadPoolExecutor(
            max_workers=io_threads or max(2, concurrency * 2), thread_name_prefix="imagestudio-put"
        )
        self.runner = JobRunner(
            db=db,
            registry=registry,
            language=self.language,
            outputs=OutputWriter(storage, self._put_pool),
            run_db=self._db,
            run_io=self._io,
            lease_seconds=self.lease_seconds,
            backoff_base=backoff_base,
            sealer=lambda: provider_keys.studio_sealer(settings),
        )
        self._rendering = 0
        # Generations past their provider (storing and recording) do not hold a slot, but at most
        # this many may be in the worker at once, so a slow store holds back new claims.
        self.max_in_flight = 2 * concurrency
        self._jobs: dict[uuid.UUID, Job] = {}
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slot_freed: asyncio.Event | None = None
        self._stopping = False
        self.completed = 0

    def _claimable(self) -> list[str]:
        """The provider names this worker takes jobs for: image providers and language models."""
        return sorted(set(self.registry.names()) | set(self.language.names()))

    # ---- lifecycle ----

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._slot_freed = asyncio.Event()
        self.hub.add_cancel_listener(self._on_cancel_notice)
        self._tasks = [
            asyncio.create_task(self._dispatch_loop(), name="imagestudio-dispatch"),
            asyncio.create_task(self._heartbeat_loop(), name="imagestudio-heartbeat"),
            asyncio.create_task(self._maintenance_loop(), name="imagestudio-reaper"),
        ]
        log.info("worker %s started (concurrency %d)", self.worker_id, self.concurrency)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let in-flight generations finish for up to `grace` seconds, then cancel them
        and hand them back to the queue without spending an attempt."""
        if self._loop is None:
            return
        self._stopping = True
        self.hub.work.fire()  # wake the dispatcher so it notices
        self._wake_dispatcher()
        # A claim in progress still hands its generations over; collect them after it returns.
        await asyncio.wait([self._tasks[0]], timeout=grace)
        await self._drain(grace)
        await self.runner.drain_side_tasks(grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.hub.remove_cancel_listener(self._on_cancel_notice)
        self._db_pool.shutdown(wait=True)
        self._io_pool.shutdown(wait=True)
        self._put_pool.shutdown(wait=True)
        self._loop = None
        log.info("worker %s stopped", self.worker_id)

    async def _drain(self, grace: float) -> None:
        running = [job.task for job in self._jobs.values() if job.task is not None]
        if not running:
            return
        _, pending = await asyncio.wait(running, timeout=grace)
        if not pending:
            return
        log.info("handing %d unfinished generations back to the queue", len(pending))
        for job in list(self._jobs.values()):
            job.release()
            job.token.cancel()
        _, stuck = await asyncio.wait(pending, timeout=max(2.0, grace / 2))
        for task in stuck:  # a provider that ignores its cancellation token
            task.cancel()
        if stuck:
            await asyncio.wait(stuck, timeout=5.0)

    @property
    def busy(self) -> int:
        return len(self._jobs)

    async def wait_idle(self, poll: float = 0.02) -> None:
        """Until nothing runs here and nothing is ready in the queue (for the CLI and tests)."""
        while True:
            if not self._jobs:
                ready = await self._db(queue.has_ready_work, self.db, self._claimable())
                if not ready and not self._jobs:
                    return
            await asyncio.sleep(poll)

    # ---- thread pools ----

    async def _db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_pool, lambda: function(*args, **kwargs))

    async def _io(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io_pool, lambda: function(*args, **kwargs))

    # ---- dispatching ----

    async def _dispatch_loop(self) -> None:
        assert self._slot_freed is not None
        providers = self._claimable()
        # After a poll timeout (rather than a wake-up) look with a cheap read before claiming, so
        # idle workers do not take SQLite's write lock every poll interval.
        look_first = False
        while not self._stopping:
            free = min(self.concurrency - self._rendering, self.max_in_flight - len(self._jobs))
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            seen = self.hub.work.version
            wanted = min(free, self.claim_batch)
            try:
                claimed = await self._claim(wanted, providers, look_first=look_first)
            except Exception:
                log.exception("claiming failed; retrying after a pause")
                await asyncio.sleep(self.poll_interval)
                continue
            look_first = False
            if self._stopping or len(claimed) == wanted:
                continue  # maybe more is ready
            look_first = not await self.hub.work.wait(seen, self.poll_interval)

    async def _claim(self, wanted: int, providers: list[str], *, look_first: bool) -> list[ClaimedGeneration]:
        if look_first and not await self._db(queue.has_ready_work, self.db, providers):
            return []
        started = time.monotonic()
        claimed = await self._db(
            queue.claim,
            self.db,
            worker_id=self.worker_id,
            limit=wanted,
            lease_seconds=self.lease_seconds,
            default_max_running=self.settings.max_running_per_user,
            providers=providers,
        )
        for generation in claimed:
            self._rendering += 1
            job = Job(
                generation,
                valid_until=started + self.lease_seconds,
                slot=Slot(self._free_slot),
                throttle=ProgressThrottle(self.progress_interval),
            )
            self._jobs[generation.id] = job
            metrics.observe_pickup(
                generation.provider, generation.type, (generation.started_at - generation.created_at).total_seconds()
            )
            job.task = asyncio.create_task(self._run(job), name=f"generation-{generation.id}")
        return claimed

    async def _run(self, job: Job) -> None:
        try:
            await self.runner.execute(job)
        except Exception:
            log.exception("generation %s: unexpected error in the worker", job.id)
        finally:
            job.slot.release()
            self._jobs.pop(job.id, None)
            self.completed += 1
            self._wake_dispatcher()

    def _free_slot(self) -> None:
        self._rendering -= 1
        self._wake_dispatcher()

    def _wake_dispatcher(self) -> None:
        if self._slot_freed is not None:
            self._slot_freed.set()

    def _on_cancel_notice(self, generation_id: uuid.UUID) -> None:
        job = self._jobs.get(generation_id)
        if job is not None:
            job.token.cancel()

    # ---- leases and maintenance ----

    async def _heartbeat_loop(self) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.renew_leases()
                metrics.heartbeat(self.worker_id)
            except Exception:
                log.exception("lease renewal failed")

    async def renew_leases(self) -> None:
        """One heartbeat: extend the leases of every job here; stop those whose lease is gone."""
        jobs = list(self._jobs.values())
        if not jobs:
            return
        sent = time.monotonic()
        held = await self._db(queue.renew, self.db, [job.claimed.lease for job in jobs], self.lease_seconds)
        for job in jobs:
            if job.id not in held:
                self.runner.lease_missing(job)
                continue
            job.valid_until = sent + self.lease_seconds
            if held[job.id]:
                job.token.cancel()

    async def _maintenance_loop(self) -> None:
        temp_age = self.settings.storage_temp_max_age_seconds
        # Walking the whole storage for leftovers costs more than a reap: do it twice per age, not
        # every round.
        next_storage_sweep = time.monotonic()
        # Cleanup runs once per interval across every worker (run_if_due decides whose turn it is);
        # looking twice per interval keeps the gap between runs under one and a half intervals.
        next_cleanup = time.monotonic()
        while True:
            if time.monotonic() >= next_cleanup:
                next_cleanup = time.monotonic() + self.settings.cleanup_interval_seconds / 2
                try:
                    await self._io(cleanup.run_if_due, self.db, self.storage, self.settings)
                except Exception:
                    log.exception("maintenance (cleanup passes) failed")
            try:
                await self._db(queue.reap, self.db, backoff_base=self.backoff_base)
                await self._io(queue.sweep, self.db, self.storage)
                if time.monotonic() >= next_storage_sweep:
                    next_storage_sweep = time.monotonic() + temp_age / 2
                    removed = await self._io(self.storage.sweep_incomplete, temp_age)
                    if removed:
                        log.info("removed %d leftovers of interrupted storage writes", removed)
            except Exception:
                log.exception("maintenance (reaping expired leases, sweeping storage) failed")
            await asyncio.sleep(self.reap_interval)
