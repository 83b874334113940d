"""The job runner's language-model steps: captions, prompts written by a language model, session titles.

A mixin of JobRunner (it uses the runner's pools, lease handling and outcome paths), kept apart so the
image path reads on its own. Retry policy is the engine's, keyed on the language layer's typed errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, TypeVar

from imagestudio.generations import captions, prompting, titling
from imagestudio.generations.fenced import Outcome
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.language import LanguageError, LanguageRetriableError
from imagestudio.models import CaptionStyle, InputPurpose
from imagestudio.providers.base import CancellationToken, GenerationCanceled, PermanentError, ProviderError

if TYPE_CHECKING:
    from imagestudio.generations.jobs import Job, JobRunner

log = logging.getLogger(__name__)
T = TypeVar("T")

# How often a language call looks at its cancellation token (a threading.Event, so it is polled).
CANCEL_POLL_SECONDS = 0.05
INTERNAL_ERROR = "internal_error"


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

    async def _caption(self: JobRunner, job: Job) -> None:
        """Describe the job's asset with its language model and record the caption. The retry policy
        is the one image providers get, keyed on the language layer's typed errors."""
        claimed = job.claimed
        try:
            model = self.language.get(claimed.provider)
            if not claimed.inputs:
                raise PermanentError("the asset to describe is gone", code="input_unavailable")
            image = await self._io(self._load_input, claimed.inputs[0].storage_key)
            style = CaptionStyle(claimed.params.get("style", CaptionStyle.short.value))
            result = await until_cancelled(model.describe(image, style, model=claimed.model), job.token)
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
            log.exception("caption %s: the language model raised unexpectedly", claimed.id)
            await self._retry_or_fail(job, INTERNAL_ERROR, f"{type(error).__name__}: {error}", None)
            return
        if job.lost or job.token.cancelled:
            await self._after_cancel(job)
            return
        job.slot.release()
        outcome = await self._record(job, self._db, captions.finish_caption, self.db, claimed, result)
        if outcome == Outcome.cancel_requested:
            await self._after_cancel(job)


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
