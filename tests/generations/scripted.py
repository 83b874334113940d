"""A provider whose behaviour each test scripts: errors to raise on given calls, slow steps, a hold
that keeps it mid-run until released, or ignoring its cancellation token. Its images are real
(solid colours derived from prompt and seed), so everything downstream of it runs for real."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections import Counter
from decimal import Decimal

from PIL import Image

from imagestudio.providers.base import (
    CancellationToken,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    GenerationType,
    ModelInfo,
    ProgressCallback,
    ProviderCapabilities,
)

MODEL = "scripted-1"
STALL_BOUND_SECONDS = 30.0


class ScriptedProvider:
    name = "scripted"
    kind = "test"

    def __init__(self, *, steps: int = 3, step_delay: float = 0.0, honour_cancel: bool = True) -> None:
        self.steps = steps
        self.step_delay = step_delay
        self.honour_cancel = honour_cancel
        # One entry per call, consumed in order: an exception to raise, or None to render.
        self.script: list[Exception | None] = []
        self.requests: list[GenerationRequest] = []
        self.entered = threading.Event()
        self.held = threading.Event()  # set: runs wait at their first step until released
        self.released = threading.Event()
        self.running: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.problem: str | None = None
        # When set: freeze the whole process (event loop included) at the first step until this event
        # is set (a stall), bounded by STALL_BOUND_SECONDS.
        self.stall_until: threading.Event | None = None
        # Like OpenAI and Gemini: no seed reported per image, and a rewrite of the prompt.
        self.report_seeds = True
        self.revised_prompt: str | None = None
        self._lock = threading.Lock()

    def capabilities(self) -> ProviderCapabilities:
        types = frozenset(GenerationType)
        return ProviderCapabilities(
            types=types,
            models=(ModelInfo(id=MODEL, label="Scripted", types=types),),
            default_model=MODEL,
            min_size=8,
            max_size=1024,
            size_multiple=1,
        )

    def configuration_problem(self) -> str | None:
        return self.problem

    async def aclose(self) -> None:
        return None

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        with self._lock:
            self.requests.append(request)
            step_error = self.script.pop(0) if self.script else None
        if step_error is not None:
            raise step_error
        # Prompts start with a tag ("userA: ...") so tests can watch per-user concurrency.
        tag = request.prompt.split(":", 1)[0]
        with self._lock:
            self.running[tag] += 1
            self.peak[tag] = max(self.peak[tag], self.running[tag])
        self.entered.set()
        try:
            if self.stall_until is not None:
                self.stall_until.wait(STALL_BOUND_SECONDS)  # the point is to freeze the event loop
            for step in range(1, self.steps + 1):
                if self.honour_cancel:
                    cancel.raise_if_cancelled()
                while self.held.is_set() and not self.released.is_set():
                    if self.honour_cancel and cancel.cancelled:
                        cancel.raise_if_cancelled()
                    await asyncio.sleep(0.005)
                if self.step_delay:
                    await asyncio.sleep(self.step_delay)
                progress(step, self.steps)
        finally:
            with self._lock:
                self.running[tag] -= 1
        seed = request.seed or 0
        images = [
            GeneratedImage(
                Image.new("RGB", (request.width, request.height), _colour(request.prompt, seed + i)),
                seed + i if self.report_seeds else None,
            )
            for i in range(request.num_images)
        ]
        return GenerationResult(
            images=images,
            model=request.model,
            cost=Decimal("0.01"),
            usage={"steps": self.steps},
            revised_prompt=self.revised_prompt,
        )


def _colour(prompt: str, seed: int) -> tuple[int, int, int]:
    digest = hashlib.sha256(f"{prompt}|{seed}".encode()).digest()
    return digest[0], digest[1], digest[2]
