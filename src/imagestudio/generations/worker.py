"""The worker: claims generations, runs them on their provider, stores outputs, records the outcome.

One asyncio Worker runs up to `concurrency` generations at once. Database calls run on a small
thread pool (one thread on SQLite, whose writers are serialized anyway, so they never meet on the
busy timeout); decoding, encoding and storage run on another, off the event loop. Per generation
the hot path is three transactions: the claim (shared by a batch), nothing while rendering (progress
is throttled and the final step rides along with the result), and the final one recording assets,
events and status together.

Retry policy lives here, keyed on the provider's typed errors: RetriableError goes back to the queue
with backoff (its retry_after when given) until max_attempts; ContentRejectedError,
NotConfiguredError and PermanentError fail at once; anything unexpected is treated as transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from PIL import Image

from imagestudio.assets.images import encode_png, load_image, make_thumbnail, sha256_hex
from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations import fenced, queue
from imagestudio.generations.events import PROGRESS_INTERVAL_SECONDS, ProgressThrottle
from imagestudio.generations.fenced import Outcome, StoredOutput
from imagestudio.generations.language_steps import LanguageSteps
from imagestudio.generations.notify import NotificationHub, get_hub
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.generations.service import output_key, stored_keys, thumbnail_key
from imagestudio.language import LanguageRegistry
from imagestudio.models import InputPurpose, RunStatus
from imagestudio.models.types import utcnow
from imagestudio.providers.base import (
    CancellationToken,
    ContentRejectedError,
    GeneratedImage,
    GenerationCanceled,
    GenerationRequest,
    GenerationResult,
    GenerationType,
    NotConfiguredError,
    PermanentError,
    Provider,
    ProviderError,
    RetriableError,
    UnsupportedRequest,
    check_request,
    model_for_type,
)
from imagestudio.providers.registry import ProviderRegistry, UnknownProvider
from imagestudio.storage.base import ObjectNotFound, Storage

log = logging.getLogger(__name__)
T = TypeVar("T")

PNG_COMPRESS_LEVEL = 1
INTERNAL_ERROR = "internal_error"


class InputUnavailable(PermanentError):
    code = "input_unavailable"


class _StorageFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Job:
    claimed: ClaimedGeneration
    # Monotonic time until which the lease is certainly ours (measured from before the claim or
    # renewal was sent, so it errs early).
    valid_until: float
    token: CancellationToken = field(default_factory=CancellationToken)
    throttle: ProgressThrottle = field(default_factory=ProgressThrottle)
    lost: bool = False
    releasing: bool = False
    rendering: bool = True
    # Set once its outcome is recorded: a renewal that no longer finds it is then no news.
    finished: bool = False
    written: list[str] = field(default_factory=list)
    progress_task: asyncio.Task | None = None
    task: asyncio.Task | None = None

    @property
    def id(self) -> uuid.UUID:
        return self.claimed.id


class Worker(LanguageSteps):
    """Runs generations from the queue until stopped. Start with `await worker.start()`, stop with
    `await worker.stop()` (finishes in-flight work within the grace period, hands the rest back)."""

    def __init__(
        self,
        *,
        db: Database,
        storage: Storage,
        registry: ProviderRegistry,
        settings: Settings,
        concurrency: int = 1,
        hub: NotificationHub | None = None,
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
        # Language models write captions; their jobs share the queue with the image providers'.
        self.language = language or LanguageRegistry()
        self.settings = settings
        self.concurrency = concurrency
        self.hub = hub or get_hub()
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
        self._rendering = 0
        # Generations past their provider (storing and recording) do not hold a slot, but at most
        # this many may be in the worker at once, so a slow store holds back new claims.
        self.max_in_flight = 2 * concurrency
        self._jobs: dict[uuid.UUID, _Job] = {}
        # Work beside the generations (session titles): awaited briefly on stop, never blocking a render.
        self._side_tasks: set[asyncio.Task] = set()
        self._tasks: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slot_freed: asyncio.Event | None = None
        self._stopping = False
        self.completed = 0

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
        if self._slot_freed is not None:
            self._slot_freed.set()
        # A claim in progress still hands its generations over; collect them after it returns.
        await asyncio.wait([self._tasks[0]], timeout=grace)
        running = [job.task for job in self._jobs.values() if job.task is not None]
        if running:
            _, pending = await asyncio.wait(running, timeout=grace)
            if pending:
                log.info("handing %d unfinished generations back to the queue", len(pending))
                for job in list(self._jobs.values()):
                    job.releasing = True
                    job.token.cancel()
                _, stuck = await asyncio.wait(pending, timeout=max(2.0, grace / 2))
                for task in stuck:  # a provider that ignores its cancellation token
                    task.cancel()
                if stuck:
                    await asyncio.wait(stuck, timeout=5.0)
        if self._side_tasks:
            await asyncio.wait(list(self._side_tasks), timeout=grace)
            for task in list(self._side_tasks):
                task.cancel()
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

    async def _io(self, function: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io_pool, function, *args)

    # ---- loops ----

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
                if look_first and not await self._db(queue.has_ready_work, self.db, providers):
                    claimed = []
                else:
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
            except Exception:
                log.exception("claiming failed; retrying after a pause")
                await asyncio.sleep(self.poll_interval)
                continue
            for generation in claimed:
                job = _Job(generation, valid_until=started + self.lease_seconds)
                job.throttle = ProgressThrottle(self.progress_interval)
                self._jobs[generation.id] = job
                self._rendering += 1
                job.task = asyncio.create_task(self._run(job), name=f"generation-{generation.id}")
            look_first = False
            if self._stopping or len(claimed) == wanted:
                continue  # maybe more is ready
            look_first = not await self.hub.work.wait(seen, self.poll_interval)

    def _claimable(self) -> list[str]:
        """The provider names this worker takes jobs for: image providers and language models."""
        return sorted(set(self.registry.names()) | set(self.language.names()))

    async def _heartbeat_loop(self) -> None:
        interval = max(0.05, self.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            jobs = list(self._jobs.values())
            if not jobs:
                continue
            sent = time.monotonic()
            try:
                held = await self._db(queue.renew, self.db, [job.claimed.lease for job in jobs], self.lease_seconds)
            except Exception:
                log.exception("lease renewal failed")
                continue
            for job in jobs:
                if job.id not in held:
                    self._mark_lost(job)
                else:
                    job.valid_until = sent + self.lease_seconds
                    if held[job.id]:
                        job.token.cancel()

    async def _maintenance_loop(self) -> None:
        while True:
            try:
                await self._db(queue.reap, self.db, backoff_base=self.backoff_base)
                await self._io(queue.sweep, self.db, self.storage)
            except Exception:
                log.exception("reaping expired leases failed")
            await asyncio.sleep(self.reap_interval)

    def _on_cancel_notice(self, generation_id: uuid.UUID) -> None:
        job = self._jobs.get(generation_id)
        if job is not None:
            job.token.cancel()

    def _mark_lost(self, job: _Job) -> None:
        if job.finished:
            return
        if not job.lost:
            log.warning("lost the lease on generation %s (attempt %d)", job.id, job.claimed.attempt)
        job.lost = True
        job.token.cancel()

    # ---- one generation ----

    async def _run(self, job: _Job) -> None:
        try:
            await self._execute(job)
        except Exception:
            log.exception("generation %s: unexpected error in the worker", job.id)
        finally:
            self._end_render(job)
            self._jobs.pop(job.id, None)
            self.completed += 1
            if self._slot_freed is not None:
                self._slot_freed.set()

    def _end_render(self, job: _Job) -> None:
        if job.rendering:
            job.rendering = False
            self._rendering -= 1
            if self._slot_freed is not None:
                self._slot_freed.set()

    async def _execute(self, job: _Job) -> None:
        claimed = job.claimed
        if claimed.type == GenerationType.caption:
            await self._caption(job)
            return
        if claimed.prompt_method is None and not await self._settle_prompt(job):
            return
        if claimed.session_id is not None and claimed.attempt == 1:
            self._title_in_background(claimed)
        # The requested provider first, then its configured fallbacks, skipping any not ready now.
        chain = self.registry.ready_chain(claimed.provider) if claimed.provider in self.registry else []
        chain = chain or [claimed.provider]
        for position, name in enumerate(chain):
            has_fallback = position < len(chain) - 1
            try:
                provider = self.registry.get(name)
                request = await self._build_request(job)
                if name != claimed.provider:
                    request = self._for_fallback(provider, request)
                    if request is None:
                        continue
                    log.info("generation %s: %s falls back to %s", claimed.id, claimed.provider, name)
                result = await provider.generate(request, self._progress_callback(job), job.token)
                if not result.images:
                    raise PermanentError("the provider returned no images")
            except GenerationCanceled:
                await self._after_cancel(job)
                return
            except asyncio.CancelledError:
                if job.releasing:  # stop() gave up waiting on a provider that ignored its token
                    await self._after_cancel(job)
                    return
                raise
            except UnknownProvider as error:
                if has_fallback:
                    continue
                await self._fail(job, NotConfiguredError.code, str(error))
                return
            except ContentRejectedError as error:
                await self._fail(job, error.code, error.message)
                return
            except NotConfiguredError as error:
                if has_fallback:
                    continue
                await self._fail(job, error.code, error.message)
                return
            except RetriableError as error:
                # Retries stay with the same provider; a fallback takes over once they are spent.
                if has_fallback and claimed.attempt >= claimed.max_attempts:
                    continue
                await self._retry_or_fail(job, error.code, error.message, error.retry_after)
                return
            except ProviderError as error:
                await self._fail(job, error.code, error.message)
                return
            except Exception as error:
                log.exception("generation %s: provider %s raised unexpectedly", claimed.id, name)
                await self._retry_or_fail(job, INTERNAL_ERROR, f"{type(error).__name__}: {error}", None)
                return
            if job.lost or job.token.cancelled:
                await self._after_cancel(job)
                return
            await self._finish(job, provider.name, result)
            return

    @staticmethod
    def _for_fallback(provider: Provider, request: GenerationRequest) -> GenerationRequest | None:
        """The request in the fallback's terms (its model for the type), or None if it cannot serve it."""
        caps = provider.capabilities()
        info = model_for_type(caps, request.type)
        if info is None:
            return None
        adapted = dataclasses.replace(request, model=info.id)
        try:
            check_request(
                caps,
                type=request.type,
                model=info.id,
                num_images=request.num_images,
                width=request.width,
                height=request.height,
                has_init=request.init_image is not None,
                has_mask=request.mask_image is not None,
                upscale_factor=request.upscale_factor,
            )
        except UnsupportedRequest:
            return None
        return adapted

    async def _build_request(self, job: _Job) -> GenerationRequest:
        claimed = job.claimed
        images: dict[str, list[Image.Image]] = {}
        if claimed.inputs:
            loaded = await asyncio.gather(*(self._io(self._load_input, ref.storage_key) for ref in claimed.inputs))
            for ref, image in zip(claimed.inputs, loaded, strict=True):
                images.setdefault(ref.role, []).append(image)
        extra: dict[str, object] = dict(claimed.params)
        if claimed.prompt_options:
            extra.setdefault("prompt_options", claimed.prompt_options)
        return GenerationRequest(
            type=GenerationType(claimed.type),
            prompt=claimed.enhanced_prompt or claimed.prompt,
            model=claimed.model,
            num_images=claimed.num_images,
            width=claimed.width,
            height=claimed.height,
            negative_prompt=claimed.negative_prompt,
            aspect_ratio=claimed.aspect_ratio,
            steps=claimed.steps,
            guidance=claimed.guidance,
            strength=claimed.strength,
            scheduler=claimed.scheduler,
            seed=claimed.seed,
            upscale_factor=claimed.upscale_factor,
            init_image=next(iter(images.get(InputPurpose.init.value, [])), None),
            mask_image=next(iter(images.get(InputPurpose.mask.value, [])), None),
            reference_images=tuple(images.get(InputPurpose.reference.value, [])),
            extra=extra,
        )

    def _load_input(self, key: str) -> Image.Image:
        try:
            return load_image(self.storage.get(key))
        except ObjectNotFound:
            raise InputUnavailable(f"an input image is missing from storage ({key})") from None

    def _progress_callback(self, job: _Job) -> Callable[[int, int], None]:
        loop = self._loop
        assert loop is not None

        def progress(step: int, total: int) -> None:
            if job.throttle.report(step, total):
                loop.call_soon_threadsafe(self._start_progress_write, job)

        return progress

    def _start_progress_write(self, job: _Job) -> None:
        # Once the provider has returned, the last step rides along with the result instead.
        if job.lost or not job.rendering or job.id not in self._jobs:
            return
        job.progress_task = asyncio.create_task(self._write_progress(job))

    async def _write_progress(self, job: _Job) -> None:
        step, total = job.throttle.take()
        try:
            cancel = await self._db(fenced.record_progress, self.db, job.claimed, step, total)
        except Exception:
            log.exception("generation %s: writing progress failed", job.id)
            job.throttle.wrote(*job.throttle.written)
            return
        job.throttle.wrote(step, total)
        if cancel is None:
            self._mark_lost(job)
        elif cancel:
            job.token.cancel()

    async def _settle_progress(self, job: _Job) -> None:
        if job.progress_task is not None and not job.progress_task.done():
            with contextlib.suppress(Exception):
                await job.progress_task

    # ---- outcomes ----

    async def _finish(self, job: _Job, served_by: str, result: GenerationResult) -> None:
        claimed = job.claimed
        await self._settle_progress(job)
        # The provider is done with it: its slot can take the next generation while this one's
        # outputs are encoded, stored and recorded.
        self._end_render(job)
        if not await self._ensure_lease(job):
            await self._after_lost(job)
            return
        try:
            outcome = await self._io(self._store_and_record, job, served_by, result)
        except _StorageFailed as failure:
            log.error("generation %s: storing outputs failed: %s", claimed.id, failure.error)
            await self._retry_or_fail(job, "storage_error", f"storing outputs failed: {failure.error}", None)
            return
        if outcome == Outcome.cancel_requested:
            await self._after_cancel(job)
        elif outcome == Outcome.lost:
            await self._after_lost(job)

    def _store_and_record(self, job: _Job, served_by: str, result: GenerationResult) -> Outcome:
        """Encode and store every output, then record them and success, all in one hop off the loop.
        Images (and their thumbnails) encode and upload side by side on the storage threads."""
        claimed = job.claimed
        images = result.images
        steps = _int_or_none(result.usage.get("steps"))
        try:
            thumbnails = [
                self._put_pool.submit(self._store_thumbnail, job, index, generated.image)
                for index, generated in enumerate(images)
            ]
            others = [
                self._put_pool.submit(self._store_output, job, index, generated, steps)
                for index, generated in enumerate(images)
                if index > 0
            ]
            stored = [self._store_output(job, 0, images[0], steps), *(future.result() for future in others)]
            for future in thumbnails:
                future.result()
            if len(images) < claimed.num_images and claimed.attempt > 1:
                # An earlier attempt may have stored more images than this one returned.
                self._delete_keys(stored_keys(claimed.id, claimed.num_images, len(images)))
        except Exception as error:
            raise _StorageFailed(error) from error
        outcome = fenced.finish_succeeded(
            self.db,
            claimed,
            stored,
            served_by=served_by,
            model=result.model or claimed.model,
            revised_prompt=result.revised_prompt,
            cost=result.cost,
            usage=dict(result.usage),
            final_progress=job.throttle.unwritten(),
        )
        job.finished = outcome == Outcome.done
        return outcome

    def _store_output(self, job: _Job, index: int, generated: GeneratedImage, steps: int | None) -> StoredOutput:
        claimed = job.claimed
        image = generated.image
        seed = generated.seed
        if seed is None and claimed.seed is not None and claimed.type != GenerationType.upscale:
            seed = claimed.seed + index
        png = encode_png(image, self._metadata(claimed, seed, image, steps), compress_level=PNG_COMPRESS_LEVEL)
        key = output_key(claimed.id, index)
        job.written.append(key)
        self.storage.put(key, png, "image/png")
        return StoredOutput(
            batch_index=index,
            storage_key=key,
            thumbnail_key=thumbnail_key(claimed.id, index),
            mime_type="image/png",
            bytes=len(png),
            width=image.width,
            height=image.height,
            sha256=sha256_hex(png),
            seed=seed,
        )

    def _store_thumbnail(self, job: _Job, index: int, image: Image.Image) -> None:
        data = make_thumbnail(image)
        key = thumbnail_key(job.id, index)
        job.written.append(key)
        self.storage.put(key, data, "image/webp")

    @staticmethod
    def _metadata(
        claimed: ClaimedGeneration, seed: int | None, image: Image.Image, steps: int | None
    ) -> dict[str, str]:
        """The generation's parameters, embedded in the PNG so the file alone can reproduce it."""
        values: dict[str, object] = {
            "imagestudio:generation_id": claimed.id,
            "prompt": claimed.enhanced_prompt or claimed.prompt,
            "negative_prompt": claimed.negative_prompt,
            "seed": seed,
            "model": claimed.model,
            "provider": claimed.provider,
            "type": claimed.type,
            "parent_generation_id": claimed.parent_generation_id,
            "width": image.width,
            "height": image.height,
            "steps": claimed.steps or steps,
            "guidance": claimed.guidance,
            "strength": claimed.strength,
            "scheduler": claimed.scheduler,
        }
        if claimed.enhanced_prompt and claimed.enhanced_prompt != claimed.prompt:
            values["original_prompt"] = claimed.prompt
        values["prompt_method"] = claimed.prompt_method
        return {key: str(value) for key, value in values.items() if value is not None and value != ""}

    def _delete_keys(self, keys) -> None:
        for key in keys:
            self.storage.delete(key)

    async def _discard_outputs(self, job: _Job) -> bool:
        """Delete what this or an earlier attempt stored, while the lease is certainly ours (so no
        newer attempt can be writing the same keys). False when the lease is gone."""
        keys = set(job.written)
        if job.claimed.attempt > 1:
            keys.update(stored_keys(job.id, job.claimed.num_images))
        if not keys:
            return True
        if not await self._ensure_lease(job):
            return False
        await self._io(self._delete_keys, sorted(keys))
        return True

    async def _ensure_lease(self, job: _Job) -> bool:
        """Make sure at least half a lease remains before touching storage; renews when needed."""
        if job.lost:
            return False
        if time.monotonic() < job.valid_until - self.lease_seconds / 2:
            return True
        sent = time.monotonic()
        held = await self._db(queue.renew, self.db, [job.claimed.lease], self.lease_seconds)
        if job.id not in held:
            self._mark_lost(job)
            return False
        job.valid_until = sent + self.lease_seconds
        return True

    async def _after_cancel(self, job: _Job) -> None:
        """The token fired: a cancel request, a lost lease, or a shutdown handing work back."""
        await self._settle_progress(job)
        if job.lost:
            await self._after_lost(job)
            return
        if job.releasing:
            released = await self._db(queue.release, self.db, [job.claimed.lease])
            if released:
                return
            state = await self._db(fenced.lease_state, self.db, job.id)
            if state is None or not state.cancel_requested:
                await self._after_lost(job)
                return
        if not await self._discard_outputs(job):
            await self._after_lost(job)
            return
        outcome = await self._db(fenced.finish_canceled, self.db, job.claimed)
        job.finished = outcome == Outcome.done
        if outcome == Outcome.lost:
            await self._after_lost(job)

    async def _fail(self, job: _Job, code: str, message: str) -> None:
        await self._settle_progress(job)
        if not await self._discard_outputs(job):
            await self._after_lost(job)
            return
        outcome = await self._db(fenced.finish_failed, self.db, job.claimed, code, message)
        job.finished = outcome == Outcome.done
        if outcome == Outcome.lost:
            await self._after_lost(job)

    async def _retry_or_fail(self, job: _Job, code: str, message: str, retry_after: float | None) -> None:
        claimed = job.claimed
        if job.lost:
            await self._after_lost(job)
            return
        if claimed.attempt >= claimed.max_attempts:
            await self._fail(job, code, message)
            return
        await self._settle_progress(job)
        delay = queue.retry_delay(claimed.attempt, retry_after=retry_after, base=self.backoff_base)
        run_after = utcnow() + timedelta(seconds=delay)
        outcome = await self._db(fenced.requeue, self.db, claimed, run_after=run_after, code=code, message=message)
        job.finished = outcome == Outcome.done
        if outcome == Outcome.cancel_requested:
            await self._after_cancel(job)
        elif outcome == Outcome.lost:
            await self._after_lost(job)
        else:
            log.info("generation %s: %s; retrying in %.1fs", claimed.id, code, delay)

    async def _after_lost(self, job: _Job) -> None:
        """Someone else owns the generation now, or it ended without us. Our objects stay unless it
        ended unsuccessfully, in which case nobody will overwrite them: remove them (and flag the
        sweeper first, so a crash right here still gets them removed)."""
        job.lost = True
        if not job.written:
            return
        state = await self._db(fenced.lease_state, self.db, job.id)
        if state is None or state.status in (RunStatus.failed, RunStatus.canceled):
            if state is not None:
                await self._db(fenced.flag_cleanup, self.db, job.id)
            await self._io(self._delete_keys, list(job.written))


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
