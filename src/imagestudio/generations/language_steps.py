"""The job runner's language-model steps: captions, replies, prompts written by a language model, titles.

A mixin of JobRunner (it uses the runner's pools, lease handling and outcome paths), kept apart so the
image path reads on its own. Retry policy is the engine's, keyed on the language layer's typed errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, TypeVar

from PIL import Image

from imagestudio.generations import captions, fenced, kinds, prompting, replies, titling
from imagestudio.generations.fenced import Outcome
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.language import ChatDelta, ChatResult, LanguageError, LanguageRetriableError
from imagestudio.language.registry import BUILTIN
from imagestudio.models import CaptionStyle, InputPurpose
from imagestudio.providers.base import CancellationToken, GenerationCanceled, PermanentError, ProviderError

if TYPE_CHECKING:
    from imagestudio.generations.jobs import Job, JobRunner

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")

# How often a language call looks at its cancellation token (a threading.Event, so it is polled).
CANCEL_POLL_SECONDS = 0.05
INTERNAL_ERROR = "internal_error"
# Pieces of a streamed answer arriving faster than this are written together, as one delta event.
DELTA_INTERVAL_SECONDS = 0.1


class LanguageSteps:
    async def drain_side_tasks(self: JobRunner, grace: float) -> None:
        """Let side work (titles) finish for up to `grace` seconds, then cancel what is left."""
        if self._side_tasks:
            await asyncio.wait(list(self._side_tasks), timeout=grace)
            for task in list(self._side_tasks):
                task.cancel()

    def _title_in_background(self: JobRunner, claimed: ClaimedGeneration) -> None:
        """A session's first generation also asks for a title, beside the render (nothing waits on it)."""

        async def title() -> None:
            try:
                await titling.title_session(
                    self._db,
                    self.db,
                    self.language,
                    generation_id=claimed.id,
                    session_id=claimed.session_id,
                    prompt=claimed.prompt,
                )
            except Exception:
                log.exception("titling the session of generation %s failed", claimed.id)

        task = asyncio.create_task(title(), name=f"title-{claimed.id}")
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def _settle_prompt(self: JobRunner, job: Job) -> bool:
        """Have the language model write the prompt the request asked it to (once: a retry reuses
        the decision). False when the job ended meanwhile (canceled, or the lease lost)."""
        claimed = job.claimed
        source = None
        try:
            init = next((ref for ref in claimed.inputs if ref.role == InputPurpose.init.value), None)
            if init is not None:
                source = await self._io(self._load_input, init.storage_key)
            context = await self._db(prompting.session_context, self.db, claimed.session_id)
            plan = await until_cancelled(prompting.decide(claimed, self.language, source, context), job.token)
        except GenerationCanceled:
            await self._after_cancel(job)
            return False
        except ProviderError as error:  # the source image is gone: the render would fail on it too
            await self._fail(job, error.code, error.message)
            return False
        if not await self._db(prompting.record, self.db, claimed, plan):
            await self._after_lost(job)
            return False
        return True

    async def _settle(
        self: JobRunner, job: Job, work: Callable[[], Awaitable[R]], record: Callable[[R], Awaitable[Outcome]]
    ) -> None:
        """Run a language job's work and settle it as image attempts are settled: a cancel ends it,
        the language layer's retriable errors retry it, other errors fail it, and a success is
        recorded under the lease."""
        claimed = job.claimed
        try:
            result = await until_cancelled(work(), job.token)
        except GenerationCanceled:
            await self._after_cancel(job)
            return
        except LanguageRetriableError as error:
            await self._retry_or_fail(job, error.code, error.message, error.retry_after)
            return
        except (LanguageError, ProviderError) as error:
            await self._fail(job, error.code, error.message)
            return
        except Exception as error:
            log.exception("%s job %s: the language model raised unexpectedly", claimed.type, claimed.id)
            await self._retry_or_fail(job, INTERNAL_ERROR, f"{type(error).__name__}: {error}", None)
            return
        if job.lost or job.token.cancelled:
            await self._after_cancel(job)
            return
        job.slot.release()
        if await record(result) == Outcome.cancel_requested:
            await self._after_cancel(job)

    async def _caption(self: JobRunner, job: Job) -> None:
        """Describe the job's asset with its language model and record the caption."""
        claimed = job.claimed

        async def describe() -> ChatResult:
            model = self.language.get(claimed.provider)
            if not claimed.inputs:
                raise PermanentError("the asset to describe is gone", code="input_unavailable")
            image = await self._io(self._load_input, claimed.inputs[0].storage_key)
            style = CaptionStyle(claimed.params.get("style", CaptionStyle.short.value))
            return await model.describe(image, style, model=claimed.model)

        async def record(result: ChatResult) -> Outcome:
            return await self._record(job, self._db, captions.finish_caption, self.db, claimed, result)

        await self._settle(job, describe, record)

    async def _reply(self: JobRunner, job: Job) -> None:
        """Answer the job's question about its session, streaming the answer as delta events, and
        write it into its message."""
        claimed = job.claimed

        async def answer() -> ChatResult:
            context = await self._db(replies.load_context, self.db, claimed)
            if claimed.provider == BUILTIN:
                pieces = _whole(replies.facts_answer(context, claimed.prompt))
            else:
                image = await self._io(self._load_input, claimed.inputs[0].storage_key) if claimed.inputs else None
                request = replies.chat_request(context, claimed.prompt, image, claimed.model)
                pieces = self.language.get(claimed.provider).stream(request)
            return await self._stream_answer(job, pieces)

        async def record(result: ChatResult) -> Outcome:
            return await self._record(job, self._db, replies.finish_reply, self.db, claimed, result)

        await self._settle(job, answer, record)

    async def _stream_answer(self: JobRunner, job: Job, items: AsyncIterator[ChatDelta | ChatResult]) -> ChatResult:
        """Write the answer's pieces as delta events as they come; the whole result at the end."""

        async def write(text: str, offset: int) -> None:
            cancel = await self._db(fenced.record_delta, self.db, job.claimed, text, offset)
            if cancel is None:
                self.lease_missing(job)
            elif cancel:
                job.token.cancel()

        writer = DeltaWriter(write)
        result: ChatResult | None = None
        try:
            async with aclosing(items) as stream:
                async for item in stream:
                    if isinstance(item, ChatResult):
                        result = item
                    elif item.text:
                        writer.add(item.text)
            await writer.flush()
        finally:
            writer.stop()
        if result is None:
            raise PermanentError("the language model's stream ended without an answer", code="provider_bad_response")
        if not result.text.strip():
            raise PermanentError("the language model answered with no text", code="provider_bad_response")
        return result

    async def _run_kind(self: JobRunner, job: Job, kind: kinds.JobKind) -> None:
        """A job of a kind a domain registered (UI code): the kind works, the engine settles it."""
        claimed = job.claimed

        async def load_image(key: str) -> Image.Image:
            return await self._io(self._load_input, key)

        context = kinds.KindContext(
            claimed=claimed,
            token=job.token,
            language=self.language,
            storage=self.outputs.storage,
            db=self.db,
            run_db=self._db,
            run_io=self._io,
            load_image=load_image,
            written=job.written,
        )

        async def record(result: kinds.KindResult) -> Outcome:
            return await self._record(
                job,
                self._db,
                fenced.finish_language_job,
                self.db,
                claimed,
                served_by=result.served_by,
                model=result.model,
                usage=result.usage,
                also=result.write,
            )

        await self._settle(job, lambda: kind.run(context), record)


class DeltaWriter:
    """Writes streamed text in order, one write at a time: what arrives while a write is under way
    (or sooner than DELTA_INTERVAL_SECONDS after the last) goes out together in the next one."""

    def __init__(self, write: Callable[[str, int], Awaitable[None]]) -> None:
        self._write = write
        self._pending = ""
        self._offset = 0
        self._task: asyncio.Task | None = None
        self._last = 0.0

    def add(self, text: str) -> None:
        self._pending += text
        if self._task is not None and self._task.done():
            self._task.result()  # a write that failed ends the stream here
            self._task = None
        if self._task is None:
            self._task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            wait = DELTA_INTERVAL_SECONDS - (time.monotonic() - self._last)
            if wait > 0:
                await asyncio.sleep(wait)
            text, self._pending = self._pending, ""
            await self._write(text, self._offset)
            self._offset += len(text)
            self._last = time.monotonic()

    async def flush(self) -> None:
        """Wait until everything added is written (a failed write raises here)."""
        if self._task is not None:
            await self._task

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()


async def _whole(result: ChatResult) -> AsyncIterator[ChatDelta | ChatResult]:
    """An answer known at once, as a stream of one piece."""
    yield ChatDelta(result.text)
    yield result


async def until_cancelled(work: Awaitable[T], token: CancellationToken) -> T:
    """Await work, abandoning it (GenerationCanceled) as soon as the token is set."""
    task = asyncio.ensure_future(work)
    while not task.done():
        if token.cancelled:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise GenerationCanceled()
        await asyncio.wait([task], timeout=CANCEL_POLL_SECONDS)
    return task.result()
