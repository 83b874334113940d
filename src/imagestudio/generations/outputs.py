"""Output objects: encoding a generation's images, their PNG metadata, and writing them to storage.

This is the one place where a worker writes output objects and deletes them again. Thumbnails are
not made here: an output's first thumbnail request makes and keeps one (`assets/thumbnails.py`), so
a generation costs one encode and one durable write per image, and thumbnails nobody looks at
(programs using the API) are never made. Keys come from `storage.keys`: each attempt writes under
keys of its own, before the fenced success that points at them, so no object a recorded success
points at is written again.

What the file says matches what the row says: the prompt as sent (`prompt`, and `original_prompt`
when prompt options changed it), the provider's `revised_prompt` when it reported one, and a `seed`
only when the provider reported the seed it used.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from imagestudio.assets.images import encode_png, sha256_hex
from imagestudio.generations.fenced import StoredOutput
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.providers.base import GeneratedImage, GenerationResult
from imagestudio.storage.base import Storage
from imagestudio.storage.keys import output_key

PNG_COMPRESS_LEVEL = 1


class UploadsStopped(Exception):
    """An upload was not started: another one failed, or the attempt lost its lease."""


@dataclass(frozen=True)
class RenderFacts:
    """What the provider said about a render, beyond the pixels."""

    steps: int | None
    revised_prompt: str | None

    @classmethod
    def of(cls, result: GenerationResult) -> RenderFacts:
        steps = result.usage.get("steps")
        return cls(
            steps=steps if isinstance(steps, int) and not isinstance(steps, bool) else None,
            revised_prompt=result.revised_prompt or None,
        )


def png_metadata(claimed: ClaimedGeneration, generated: GeneratedImage, facts: RenderFacts) -> dict[str, str]:
    """The generation's parameters, embedded in the PNG so the file alone can reproduce it."""
    image = generated.image
    values: dict[str, object] = {
        "imagestudio:generation_id": claimed.id,
        "prompt": claimed.enhanced_prompt or claimed.prompt,
        "revised_prompt": facts.revised_prompt,
        "negative_prompt": claimed.negative_prompt,
        "seed": generated.seed,
        "model": claimed.model,
        "provider": claimed.provider,
        "type": claimed.type,
        "parent_generation_id": claimed.parent_generation_id,
        "width": image.width,
        "height": image.height,
        "steps": claimed.steps or facts.steps,
        "guidance": claimed.guidance,
        "strength": claimed.strength,
        "scheduler": claimed.scheduler,
        "prompt_method": claimed.prompt_method,
    }
    if claimed.enhanced_prompt and claimed.enhanced_prompt != claimed.prompt:
        values["original_prompt"] = claimed.prompt
    return {key: str(value) for key, value in values.items() if value is not None and value != ""}


class OutputWriter:
    """Encodes and stores a generation's outputs. Images encode and upload side by side on `pool`
    (its own threads, so a caller waiting on its uploads can never starve them).

    Every key written is appended to the caller's `written` list before the write starts, so a
    caller that loses its lease knows what it may have to remove. Uploads not started yet are not
    started once one fails or `stop()` says the attempt is over (its lease is lost)."""

    def __init__(self, storage: Storage, pool: ThreadPoolExecutor) -> None:
        self.storage = storage
        self.pool = pool

    def store_all(
        self,
        claimed: ClaimedGeneration,
        result: GenerationResult,
        written: list[str],
        stop: Callable[[], bool] = lambda: False,
    ) -> list[StoredOutput]:
        images = result.images
        facts = RenderFacts.of(result)
        failed: list[bool] = []

        def stopped() -> bool:
            return bool(failed) or stop()

        others = [
            self.pool.submit(self._store_output, claimed, index, generated, facts, written, stopped)
            for index, generated in enumerate(images)
            if index > 0
        ]
        try:
            first = self._store_output(claimed, 0, images[0], facts, written, stopped)
            stored = [first, *(future.result() for future in others)]
        except BaseException:
            # Stop what has not started; uploads already running end on their own.
            failed.append(True)
            for future in others:
                future.cancel()
            raise
        return stored

    def store_one(
        self, claimed: ClaimedGeneration, index: int, result: GenerationResult, written: list[str]
    ) -> StoredOutput:
        """Image `index` of a batch made one call at a time (its result holds that one image),
        stored before the next call is made."""
        return self._store_output(claimed, index, result.images[0], RenderFacts.of(result), written, lambda: False)

    def store_preview(self, key: str, image: Image.Image) -> None:
        """An intermediate picture, as a quickly encoded PNG (it lives only while people watch)."""
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        self.storage.put(key, buffer.getvalue(), "image/png")

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.storage.delete(key)

    def _store_output(
        self,
        claimed: ClaimedGeneration,
        index: int,
        generated: GeneratedImage,
        facts: RenderFacts,
        written: list[str],
        stopped: Callable[[], bool],
    ) -> StoredOutput:
        image = generated.image
        png = encode_png(image, png_metadata(claimed, generated, facts), compress_level=PNG_COMPRESS_LEVEL)
        key = output_key(claimed.id, claimed.attempt, index)
        self._put(key, png, "image/png", written, stopped)
        return StoredOutput(
            batch_index=index,
            storage_key=key,
            mime_type="image/png",
            bytes=len(png),
            width=image.width,
            height=image.height,
            sha256=sha256_hex(png),
            # Only a seed the provider says it used; a guessed one would not reproduce the image.
            seed=generated.seed,
        )

    def _put(self, key: str, data: bytes, content_type: str, written: list[str], stopped: Callable[[], bool]) -> None:
        if stopped():
            raise UploadsStopped(f"not storing {key}: the attempt is ending")
        written.append(key)
        self.storage.put(key, data, content_type)
