"""One claimed generation, from its provider to its recorded outcome.

A Job moves through explicit states (JobState); the JobRunner renders it on its provider (then its
configured fallbacks), hands the outputs to the OutputWriter and records the outcome with a fenced
write. Retry policy lives here, keyed on the provider's typed errors: RetriableError goes back to
the queue with backoff (its retry_after when given) until max_attempts; ContentRejectedError,
NotConfiguredError and PermanentError fail at once; anything unexpected is treated as transient.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, TypeVar

from PIL import Image

from imagestudio.accounts import provider_keys
from imagestudio.assets.images import load_image
from imagestudio.db import Database
from imagestudio.generations import fenced, kinds, queue
from imagestudio.generations.events import ProgressThrottle
from imagestudio.generations.fenced import KeptImage, Outcome, StoredOutput
from imagestudio.generations.language_steps import LanguageSteps
from imagestudio.generations.outputs import OutputWriter
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.kit import metrics
from imagestudio.kit.answers import redact
from imagestudio.kit.sealing import Sealer
from imagestudio.language import LanguageRegistry
from imagestudio.models import GenerationType, InputPurpose, RunStatus, limits
from imagestudio.models.types import utcnow
from imagestudio.providers.base import (
    CancellationToken,
    GenerationCanceled,
    GenerationRequest,
    GenerationResult,
    ImageByImageProvider,
    NotConfiguredError,
    PermanentError,
    ProgressCallback,
    Provider,
    ProviderError,
    RetriableError,
    UnsupportedRequest,
    merge_results,
    model_for_type,
)
from imagestudio.providers.registry import ProviderRegistry, UnknownProvider
from imagestudio.providers.wire import check_generation
from imagestudio.storage.base import ObjectNotFound
from imagestudio.storage.keys import preview_key

log = logging.getLogger(__name__)
T = TypeVar("T")

INTERNAL_ERROR = "internal_error"


class InputUnavailable(PermanentError):
    code = "input_unavailable"


class JobState(StrEnum):
    # Claimed: its provider renders it, or its outputs are being stored.
    running = "running"
    # The worker is stopping: hand it back to the queue without spending an attempt.
    releasing = "releasing"
    # Its outcome is being written; that fenced write, not a renewal, says whether the lease held.
    recording = "recording"
    # Its outcome is recorded.
    finished = "finished"
    # The lease is gone: someone else owns it now, or it ended without us.
    lost = "lost"


_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.running: frozenset({JobState.releasing, JobState.recording, JobState.lost}),
    JobState.releasing: frozenset({JobState.recording, JobState.lost}),
    # Back to where it was when the write found a cancel request first.
    JobState.recording: frozenset({JobState.finished, JobState.lost, JobState.running, JobState.releasing}),
    JobState.finished: frozenset(),
    JobState.lost: frozenset(),
}


class Slot:
    """A rendering slot of the dispatcher, given back once (when the provider is done with the job)."""

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._on_release: Callable[[], None] | None = on_release

    @property
    def held(self) -> bool:
        return self._on_release is not None

    def release(self) -> None:
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release()


@dataclass
class Job:
    claimed: ClaimedGeneration
    # Monotonic time until which the lease is certainly ours (measured from before the claim or
    # renewal was sent, so it errs early).
    valid_until: float
    slot: Slot
    throttle: ProgressThrottle = field(default_factory=ProgressThrottle)
    token: CancellationToken = field(default_factory=CancellationToken)
    state: JobState = JobState.running
    written: list[str] = field(default_factory=list)
    progress_task: asyncio.Task | None = None
    preview_tasks: list[asyncio.Task] = field(default_factory=list)
    previews_sent: int = 0
    task: asyncio.Task | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _before_recording: JobState = JobState.running

    @property
    def id(self) -> uuid.UUID:
        return self.claimed.id

    def _move(self, target: JobState) -> bool:
        """Take the transition if the state machine allows it from here (callers hold the lock)."""
        if target not in _TRANSITIONS[self.state]:
            return False
        self.state = target
        return True

    def release(self) -> None:
        with self._lock:
            self._move(JobState.releasing)

    def start_recording(self) -> bool:
        with self._lock:
            before = self.state
            if not self._move(JobState.recording):
                return False
            self._before_recording = before
            return True

    def recorded(self, outcome: Outcome) -> None:
        """Apply a fenced write's outcome: done, or not written because a cancel came first. A lost
        lease stays for `lose()`, which says whether it is news."""
        with self._lock:
            if outcome == Outcome.done:
                self._move(JobState.finished)
            elif outcome == Outcome.cancel_requested:
                self._move(self._before_recording)

    def lease_missing(self) -> bool:
        """A renewal or progress write no longer finds the lease. True when this is news: the job was
        working and must stop. While its outcome is being written the write itself decides, and
        once it is recorded a missing lease is expected."""
        with self._lock:
            return self.state in (JobState.running, JobState.releasing) and self._move(JobState.lost)

    def lose(self) -> bool:
        """A fenced write found the lease gone. True when nobody had noticed yet."""
        with self._lock:
            return self._move(JobState.lost)

    @property
    def lost(self) -> bool:
        return self.state == JobState.lost

    @property
    def releasing(self) -> bool:
        return self.state == JobState.releasing


class JobRunner(LanguageSteps):
    """Runs jobs for a dispatcher: `db` and `io` run blocking calls on its thread pools."""

    def __init__(
        self,
        *,
        db: Database,
        registry: ProviderRegistry,
        outputs: OutputWriter,
        language: LanguageRegistry | None = None,
        run_db: Callable[..., Awaitable[Any]],
        run_io: Callable[..., Awaitable[Any]],
        lease_seconds: float,
        backoff_base: float,
        sealer: Callable[[], Sealer] | None = None,
    ) -> None:
        self.db = db
        # Makes what opens owners' own provider keys at run time, once, when a key is first opened
        # (None: nobody's key is ever used).
        self._make_sealer = sealer
        self._sealer: Sealer | None = None
        self.registry = registry
        self.language = language or LanguageRegistry()
        self.outputs = outputs
        # Work beside the generations (session titles): never blocks a render; drained on stop.
        self._side_tasks: set[asyncio.Task] = set()
        self._db = run_db
        self._io = run_io
        self.lease_seconds = lease_seconds
        self.backoff_base = backoff_base

    def lease_missing(self, job: Job) -> None:
        if job.lease_missing():
            log.warning("lost the lease on generation %s (attempt %d)", job.id, job.claimed.attempt)
            job.token.cancel()

    # ---- rendering ----

    async def execute(self, job: Job) -> None:
        claimed = job.claimed
        if claimed.type == GenerationType.caption:
            await self._caption(job)
            return
        if claimed.type == GenerationType.reply:
            await self._reply(job)
            return
        kind = kinds.registered(claimed.type)
        if kind is not None:
            await self._run_kind(job, kind)
            return
        if claimed.prompt_method is None and not await self._settle_prompt(job):
            return
        if claimed.session_id is not None and claimed.attempt == 1:
            self._title_in_background(claimed)
        # The requested provider first, then its configured fallbacks, skipping any not ready now
        # (a hosted one without the studio's key may still run on its owner's own key).
        chain = self._usable_chain(claimed.provider) if claimed.provider in self.registry else []
        chain = chain or [claimed.provider]
        for position, name in enumerate(chain):
            if not await self._try_provider(job, name, has_fallback=position < len(chain) - 1):
                return

    def _usable_chain(self, name: str) -> list[str]:
        usable = []
        for member in self.registry.chain(name):
            ready = self.registry.problem(member) is None
            if ready or (self._make_sealer is not None and provider_keys.takes_user_keys(self.registry.get(member))):
                usable.append(member)
        return usable

    def _opener(self) -> Sealer:
        if self._sealer is None:
            assert self._make_sealer is not None
            self._sealer = self._make_sealer()
        return self._sealer

    def _owner_key(self, owner_id: uuid.UUID, provider: str) -> str | None:
        if self._make_sealer is None:
            return None
        with self.db.reading() as session:
            return provider_keys.key_for_run(session, self._opener, owner_id, provider)

    async def _try_provider(self, job: Job, name: str, *, has_fallback: bool) -> bool:
        """Run the job on one provider and settle it. True when the next provider should try."""
        claimed = job.claimed
        own_key: str | None = None
        try:
            provider = self.registry.get(name)
            request = await self._build_request(job)
            if provider_keys.takes_user_keys(provider):
                # Opened for this call only: it travels in the request, never into the adapter.
                own_key = await self._db(self._owner_key, claimed.owner_id, name)
                request = dataclasses.replace(request, api_key=own_key)
            if name != claimed.provider:
                request = _for_fallback(provider, request)
                if request is None:
                    return True
                log.info("generation %s: %s falls back to %s", claimed.id, claimed.provider, name)
            stored: list[StoredOutput] | None = None
            if isinstance(provider, ImageByImageProvider):
                result, stored = await self._generate_each(job, provider, request)
            else:
                result = await provider.generate(request, self._progress_callback(job), job.token)
                if not result.images:
                    raise PermanentError("the provider returned no images")
        except asyncio.CancelledError:
            if job.releasing:  # stop() gave up waiting on a provider that ignored its token
                await self._after_cancel(job)
                return False
            raise
        except Exception as error:
            return await self._after_error(job, name, _without_key(error, own_key), has_fallback=has_fallback)
        if job.lost or job.token.cancelled:
            await self._after_cancel(job)
        else:
            await self._finish(job, provider.name, result, stored, own_key=own_key is not None)
        return False

    async def _generate_each(
        self, job: Job, provider: ImageByImageProvider, request: GenerationRequest
    ) -> tuple[GenerationResult, list[StoredOutput]]:
        """Make the images of the batch that no earlier attempt kept, storing and recording each as
        it arrives (under the lease fence), so a failure on image k loses nothing made before it."""
        claimed = job.claimed
        kept = {image.output.batch_index: image for image in await self._db(fenced.batch_images, self.db, claimed.id)}
        # Images another provider or model made are not mixed into this batch.
        foreign = [
            index for index, image in kept.items() if (image.provider, image.model) != (provider.name, request.model)
        ]
        if foreign:
            if not await self._db(fenced.drop_batch_images, self.db, claimed, foreign):
                self.lease_missing(job)
                raise GenerationCanceled()
            for index in foreign:
                del kept[index]
        missing = [index for index in range(request.num_images) if index not in kept]
        async for index, piece in provider.generate_each(request, missing, self._progress_callback(job), job.token):
            if index not in missing or index in kept or len(piece.images) != 1:
                raise PermanentError(f"the provider answered image {index} of the batch unasked or twice")
            kept[index] = await self._keep(job, provider.name, index, piece)
        if len(kept) != request.num_images:
            raise PermanentError(f"the provider made {len(kept)} of {request.num_images} images")
        ordered = [kept[index] for index in range(request.num_images)]
        pieces = [
            GenerationResult(
                images=[], model=image.model, revised_prompt=image.revised_prompt, cost=image.cost, usage=image.usage
            )
            for image in ordered
        ]
        return merge_results(pieces, model=request.model), [image.output for image in ordered]

    async def _keep(self, job: Job, served_by: str, index: int, piece: GenerationResult) -> KeptImage:
        """Store one image of a batch and record it under the fence. Once recorded, its objects are
        the row's: a lost lease no longer deletes them, since the next attempt will use them."""
        claimed = job.claimed
        if not await self._ensure_lease(job):
            raise GenerationCanceled()
        keys: list[str] = []
        try:
            output = await self._io(self.outputs.store_one, claimed, index, piece, keys)
        finally:
            job.written.extend(keys)
        kept = KeptImage(
            output=output,
            attempt=claimed.attempt,
            provider=served_by,
            model=piece.model or claimed.model,
            usage=dict(piece.usage),
            cost=piece.cost,
            revised_prompt=piece.revised_prompt,
        )
        # Out of this attempt's list before the write: if its outcome is unknown, the sweeper decides.
        for key in keys:
            job.written.remove(key)
        cancel = await self._db(fenced.keep_batch_image, self.db, claimed, kept)
        if cancel is None:
            job.written.extend(keys)  # certainly not recorded: this attempt's to remove
            self.lease_missing(job)
            raise GenerationCanceled()
        if cancel:
            job.token.cancel()
        return kept

    async def _after_error(self, job: Job, name: str, error: Exception, *, has_fallback: bool) -> bool:
        claimed = job.claimed
        if isinstance(error, GenerationCanceled):
            await self._after_cancel(job)
        elif isinstance(error, NotConfiguredError | UnknownProvider) and has_fallback:
            return True
        elif isinstance(error, UnknownProvider):
            await self._fail(job, NotConfiguredError.code, str(error))
        elif isinstance(error, RetriableError):
            # Retries stay with the same provider; a fallback takes over once they are spent.
            if has_fallback and claimed.attempt >= claimed.max_attempts:
                return True
            await self._retry_or_fail(job, error.code, error.message, error.retry_after)
        elif isinstance(error, ProviderError):
            await self._fail(job, error.code, error.message)
        else:
            log.error("generation %s: provider %s raised unexpectedly", claimed.id, name, exc_info=error)
            await self._retry_or_fail(job, INTERNAL_ERROR, f"{type(error).__name__}: {error}", None)
        return False

    async def _build_request(self, job: Job) -> GenerationRequest:
        claimed = job.claimed
        images: dict[str, list[Image.Image]] = {}
        if claimed.inputs:
            loaded = await asyncio.gather(*(self._io(self._load_input, ref.storage_key) for ref in claimed.inputs))
            for ref, image in zip(claimed.inputs, loaded, strict=True):
                images.setdefault(ref.role, []).append(image)
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
            extra=dict(claimed.params),
            previews=_previews_wanted(claimed.params),
        )

    def _load_input(self, key: str) -> Image.Image:
        try:
            return load_image(self.outputs.storage.get(key))
        except ObjectNotFound:
            raise InputUnavailable(f"an input image is missing from storage ({key})") from None

    # ---- progress ----

    def _progress_callback(self, job: Job) -> ProgressCallback:
        loop = asyncio.get_running_loop()

        def progress(
            step: int, total: int, /, *, preview: Image.Image | None = None, index: int | None = None
        ) -> None:
            if preview is not None:
                loop.call_soon_threadsafe(self._start_preview_write, job, step, total, preview, index or 0)
            elif job.throttle.report(step, total, index):
                loop.call_soon_threadsafe(self._start_progress_write, job)

        return progress

    def _start_preview_write(self, job: Job, step: int, total: int, preview: Image.Image, index: int) -> None:
        if job.state != JobState.running or not job.slot.held:
            return
        number = job.previews_sent
        job.previews_sent += 1
        previous = job.preview_tasks[-1] if job.preview_tasks else None
        task = asyncio.create_task(self._write_preview(job, step, total, preview, index, number, previous))
        job.preview_tasks.append(task)

    async def _write_preview(
        self,
        job: Job,
        step: int,
        total: int,
        preview: Image.Image,
        index: int,
        number: int,
        previous: asyncio.Task | None,
    ) -> None:
        """Store a preview picture and announce it in a progress event, after the one before it (so
        the events come in the order the pictures were made). Previews are not outputs: nothing else
        refers to them, and cleanup removes them after its grace period."""
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        claimed = job.claimed
        key = preview_key(claimed.id, claimed.attempt, number)
        try:
            await self._io(self.outputs.store_preview, key, preview)
            facts = {
                "key": key,
                "index": number,
                "batch_index": index,
                "width": preview.width,
                "height": preview.height,
            }
            cancel = await self._db(fenced.record_progress, self.db, claimed, step, total, facts)
        except Exception:
            log.exception("generation %s: writing a preview failed", job.id)
            return
        if cancel is None:
            self.lease_missing(job)
        elif cancel:
            job.token.cancel()

    def _start_progress_write(self, job: Job) -> None:
        # Once the provider has returned, the last step rides along with the result instead.
        if job.state != JobState.running or not job.slot.held or job.task is None or job.task.done():
            return
        job.progress_task = asyncio.create_task(self._write_progress(job))

    async def _write_progress(self, job: Job) -> None:
        step, total = job.throttle.take()
        image = job.throttle.image
        try:
            cancel = await self._db(fenced.record_progress, self.db, job.claimed, step, total, batch_index=image)
        except Exception:
            log.exception("generation %s: writing progress failed", job.id)
            job.throttle.wrote(*job.throttle.written)
            return
        job.throttle.wrote(step, total)
        if cancel is None:
            self.lease_missing(job)
        elif cancel:
            job.token.cancel()

    async def _settle_progress(self, job: Job) -> None:
        # A provider that rendered on this thread reported through call_soon_threadsafe: let those
        # callbacks start their writes before waiting for them.
        await asyncio.sleep(0)
        pending = [task for task in (job.progress_task, *job.preview_tasks) if task is not None and not task.done()]
        for task in pending:
            with contextlib.suppress(Exception):
                await task

    # ---- outcomes ----

    async def _finish(
        self,
        job: Job,
        served_by: str,
        result: GenerationResult,
        stored: list[StoredOutput] | None = None,
        *,
        own_key: bool = False,
    ) -> None:
        """Store the outputs (unless they were stored as they arrived: `stored`) and record success;
        `own_key`: the owner's own provider key paid for it."""
        claimed = job.claimed
        await self._settle_progress(job)
        # The provider is done with it: its slot can take the next generation while this one's
        # outputs are encoded, stored and recorded.
        job.slot.release()
        if not await self._ensure_lease(job):
            await self._after_lost(job)
            return
        try:
            if stored is None:
                stored = await self._io(self.outputs.store_all, claimed, result, job.written, lambda: job.lost)
        except Exception as error:
            log.error("generation %s: storing outputs failed: %s", claimed.id, error)
            await self._retry_or_fail(job, "storage_error", f"storing outputs failed: {error}", None)
            return
        outcome = await self._record(
            job,
            self._io,
            fenced.finish_succeeded,
            self.db,
            claimed,
            stored,
            served_by=served_by,
            model=result.model or claimed.model,
            revised_prompt=result.revised_prompt,
            cost=result.cost,
            usage=dict(result.usage),
            own_key=own_key,
            final_progress=job.throttle.unwritten(),
        )
        if outcome == Outcome.cancel_requested:
            await self._after_cancel(job)

    async def _record(
        self, job: Job, run: Callable[..., Awaitable[Outcome]], write: Callable[..., Outcome], *args: Any, **kwargs: Any
    ) -> Outcome:
        """Write the job's outcome with a fenced write and move the job to what the write found.
        A lost lease is handled here; a cancel that got there first is left to the caller."""
        if not job.start_recording():
            await self._after_lost(job)
            return Outcome.lost
        try:
            outcome = await run(write, *args, **kwargs)
        except BaseException:
            job.recorded(Outcome.cancel_requested)  # nothing was written: back to where it was
            raise
        job.recorded(outcome)
        if outcome == Outcome.lost:
            await self._after_lost(job)
        elif outcome == Outcome.done and write in _FINAL_WRITES:
            _observe_final(job.claimed, _FINAL_WRITES[write], args)
        return outcome

    async def _discard_outputs(self, job: Job) -> bool:
        """Delete what this attempt stored, while the lease is certainly ours. Earlier attempts'
        objects go with the sweeper once the generation is final. False when the lease is gone."""
        keys = set(job.written)
        if not keys:
            return True
        if not await self._ensure_lease(job):
            return False
        await self._io(self.outputs.delete, sorted(keys))
        return True

    async def _ensure_lease(self, job: Job) -> bool:
        """Make sure at least half a lease remains before touching storage; renews when needed."""
        if job.lost:
            return False
        if time.monotonic() < job.valid_until - self.lease_seconds / 2:
            return True
        sent = time.monotonic()
        held = await self._db(queue.renew, self.db, [job.claimed.lease], self.lease_seconds)
        if job.id not in held:
            self.lease_missing(job)
            return False
        job.valid_until = sent + self.lease_seconds
        return True

    async def _after_cancel(self, job: Job) -> None:
        """The token fired: a cancel request, a lost lease, or a shutdown handing work back."""
        await self._settle_progress(job)
        if job.lost:
            await self._after_lost(job)
            return
        if job.releasing and not await self._release(job):
            return
        if not await self._discard_outputs(job):
            await self._after_lost(job)
            return
        await self._record(job, self._db, fenced.finish_canceled, self.db, job.claimed)

    async def _release(self, job: Job) -> bool:
        """Hand the job back to the queue. True when it must be canceled instead (its cancel was
        requested); False when it is settled (released, or no longer ours)."""
        if not job.start_recording():
            await self._after_lost(job)
            return False
        released = await self._db(queue.release, self.db, [job.claimed.lease])
        if released:
            job.recorded(Outcome.done)
            return False
        state = await self._db(fenced.lease_state, self.db, job.id)
        if state is None or not state.cancel_requested:
            await self._after_lost(job)
            return False
        job.recorded(Outcome.cancel_requested)
        return True

    async def _fail(self, job: Job, code: str, message: str) -> None:
        await self._settle_progress(job)
        if not await self._discard_outputs(job):
            await self._after_lost(job)
            return
        await self._record(job, self._db, fenced.finish_failed, self.db, job.claimed, code, message)

    async def _retry_or_fail(self, job: Job, code: str, message: str, retry_after: float | None) -> None:
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
        outcome = await self._record(
            job, self._db, fenced.requeue, self.db, claimed, run_after=run_after, code=code, message=message
        )
        if outcome == Outcome.cancel_requested:
            await self._after_cancel(job)
        elif outcome == Outcome.done:
            log.info("generation %s: %s; retrying in %.1fs", claimed.id, code, delay)

    async def _after_lost(self, job: Job) -> None:
        """Someone else owns the generation now, or it ended without us. Whatever this attempt stored
        is its own and no row points at it: remove it (flagging the sweeper first, so a crash here,
        or an upload of ours that lands later, still gets removed)."""
        if job.lose():
            log.warning("lost the lease on generation %s (attempt %d)", job.id, job.claimed.attempt)
        if not job.written:
            return
        try:
            await self._db(fenced.flag_cleanup, self.db, job.id)
        finally:
            await self._io(self.outputs.delete, list(job.written))


MAX_PREVIEWS = limits.PREVIEWS_PER_IMAGE_MAX


def _without_key(error: Exception, key: str | None) -> Exception:
    """The error with the owner's key taken out of its message (services echo keys they refuse)."""
    if not key:
        return error
    if isinstance(error, ProviderError):
        error.message = redact(error.message, key)
        error.args = (error.message,)
        return error
    if key in str(error):
        return RuntimeError(redact(f"{type(error).__name__}: {error}", key))
    return error


def _previews_wanted(params: dict) -> int:
    """Intermediate pictures asked for (`partial_images`, as OpenAI names them), 0 to 3."""
    value = params.get("partial_images", 0)
    return max(0, min(MAX_PREVIEWS, value)) if isinstance(value, int) and not isinstance(value, bool) else 0


_FINAL_WRITES: dict[Callable[..., Outcome], str] = {
    fenced.finish_succeeded: RunStatus.succeeded.value,
    fenced.finish_failed: RunStatus.failed.value,
    fenced.finish_canceled: RunStatus.canceled.value,
}


def _observe_final(claimed: ClaimedGeneration, status: str, args: tuple[Any, ...]) -> None:
    """This process's metrics of a generation it finished (finish_failed's third argument is the code)."""
    code = args[2] if status == RunStatus.failed.value and len(args) > 2 else None
    seconds = (utcnow() - claimed.started_at).total_seconds()
    metrics.observe_finished(claimed.provider, claimed.type, status, seconds, code)


def _for_fallback(provider: Provider, request: GenerationRequest) -> GenerationRequest | None:
    """The request in the fallback's terms (its model for the type), or None if it cannot serve it."""
    caps = provider.capabilities()
    info = model_for_type(caps, request.type)
    if info is None:
        return None
    adapted = dataclasses.replace(request, model=info.id)
    try:
        check_generation(caps, adapted, model=info.id, details=False)
    except UnsupportedRequest:
        return None
    return adapted
