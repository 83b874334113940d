"""Cross-request batching for a local provider: generations that can share one model call are
collected into a batch, which one thread runs while each generation waits for its own share.

A batch gathers requests with the same key (what must be equal for one call to serve them all)
until it holds `max_images` images or `wait_seconds` have passed since it opened; it keeps taking
requests while it waits for its model to be free, so under load batches fill without any waiting.
Each member keeps its own progress callback, its own cancel (a canceled member leaves the batch and
returns at once; the others go on) and its own outcome: the runner settles every member separately,
and a failure of the whole call fails each member with its own copy of the error.

The batcher knows nothing of models or pipelines: the provider passes a `run(batch)` that takes the
live members with `batch.close()` and settles each with `finish` or `fail`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Hashable

from imagestudio.providers.base import GenerationCanceled, GenerationRequest, GenerationResult, ProgressCallback

log = logging.getLogger(__name__)

# How often a waiting member looks at its cancel flag.
POLL_SECONDS = 0.05


class BatchMember:
    """One generation in a batch, settled once by the batch's runner (or dropped by its own cancel)."""

    def __init__(
        self, request: GenerationRequest, progress: ProgressCallback, stop_requested: Callable[[], bool]
    ) -> None:
        self.request = request
        self.progress = progress
        self.stop_requested = stop_requested
        self.dropped = False
        self._done = threading.Event()
        self._result: GenerationResult | None = None
        self._error: BaseException | None = None

    @property
    def images(self) -> int:
        return self.request.num_images

    @property
    def settled(self) -> bool:
        return self._done.is_set()

    def finish(self, result: GenerationResult) -> None:
        if not self._done.is_set():
            self._result = result
            self._done.set()

    def fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()

    def wait(self, batch: Batch) -> GenerationResult:
        """Until the runner settles this member; a cancel meanwhile leaves the batch at once."""
        while not self._done.wait(POLL_SECONDS):
            if self.stop_requested():
                batch.drop(self)
                raise GenerationCanceled()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class Batch:
    def __init__(self, batcher: Batcher, key: Hashable) -> None:
        self.key = key
        self.opened = time.monotonic()
        self.members: list[BatchMember] = []
        self.closed = False
        self._batcher = batcher

    @property
    def images(self) -> int:
        return sum(member.images for member in self.members)

    def live(self) -> list[BatchMember]:
        return [member for member in self.members if not member.dropped]

    def close(self) -> list[BatchMember]:
        """No more joiners: the members still wanted, for the runner to render and settle."""
        with self._batcher.lock:
            self._batcher.forget(self)
            self.closed = True
            return self.live()

    def drop(self, member: BatchMember) -> None:
        """A canceled member: out of the batch if it has not started, skipped if it has."""
        with self._batcher.lock:
            member.dropped = True
            if not self.closed:
                self.members.remove(member)
                if not self.members:
                    self._batcher.forget(self)
            self._batcher.changed.notify_all()

    @property
    def abandoned(self) -> bool:
        """Every member has been canceled: nothing left to run."""
        with self._batcher.lock:
            return not self.live()


class Batcher:
    """Collects requests into batches by key and runs each batch on its own thread with `run`."""

    def __init__(
        self, run: Callable[[Batch], None], *, max_images: int, wait_seconds: float, name: str = "batch"
    ) -> None:
        if max_images < 1:
            raise ValueError("max_images must be at least 1")
        if wait_seconds < 0:
            raise ValueError("wait_seconds must not be negative")
        self.max_images = max_images
        self.wait_seconds = wait_seconds
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self._run = run
        self._name = name
        self._open: dict[Hashable, Batch] = {}

    def join(
        self,
        key: Hashable,
        request: GenerationRequest,
        progress: ProgressCallback,
        stop_requested: Callable[[], bool],
    ) -> tuple[Batch, BatchMember]:
        """Add the request to the open batch for its key (or open one) and return both."""
        member = BatchMember(request, progress, stop_requested)
        with self.lock:
            batch = self._open.get(key)
            if batch is None or batch.images + member.images > self.max_images:
                batch = Batch(self, key)
                self._open[key] = batch
                starting = True
            else:
                starting = False
            batch.members.append(member)
            if batch.images >= self.max_images:
                self.forget(batch)  # full: the next request opens another
            self.changed.notify_all()
        if starting:
            threading.Thread(target=self._serve, args=(batch,), name=f"imagestudio-{self._name}", daemon=True).start()
        return batch, member

    def forget(self, batch: Batch) -> None:
        """Stop offering the batch to joiners (callers hold the lock)."""
        if self._open.get(batch.key) is batch:
            del self._open[batch.key]

    def waiting(self) -> int:
        """Generations in batches that are still taking members."""
        with self.lock:
            return sum(len(batch.members) for batch in self._open.values())

    def _serve(self, batch: Batch) -> None:
        deadline = batch.opened + self.wait_seconds
        with self.lock:
            while self._open.get(batch.key) is batch and batch.live():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.changed.wait(remaining)
        try:
            if not batch.abandoned:
                self._run(batch)
        except BaseException as error:  # every member waits on its outcome: never leave one hanging
            for member in batch.members:
                member.fail(copy.copy(error))
            if not isinstance(error, Exception):
                raise
        finally:
            with self.lock:
                self.forget(batch)
                batch.closed = True
            for member in batch.members:
                if not member.settled and not member.dropped:
                    member.fail(RuntimeError("the batch ended without settling this generation"))
