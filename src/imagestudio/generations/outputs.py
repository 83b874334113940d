"""Output objects: encoding a generation's images, their PNG metadata, and writing them to storage.

This is the one place where a worker writes output objects (images and thumbnails) and deletes
them again, so the storage-key scheme for outputs is applied here and in `service.stored_keys` only.

What the file says matches what the row says: the prompt as sent (`prompt`, and `original_prompt`
when prompt options changed it), the provider's `revised_prompt` when it reported one, and a `seed`
only when the provider reported the seed it used.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from PIL import Image

from imagestudio.assets.images import encode_png, make_thumbnail, sha256_hex
from imagestudio.generations.fenced import StoredOutput
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.generations.service import output_key, stored_keys, thumbnail_key
from imagestudio.providers.base import GeneratedImage, GenerationResult
from imagestudio.storage.base import Storage

PNG_COMPRESS_LEVEL = 1


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


def png_metadata(
    claimed: ClaimedGeneration, generated: GeneratedImage, facts: RenderFacts
) -> dict[str, str]:
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
    }
    if claimed.enhanced_prompt and claimed.enhanced_prompt != claimed.prompt:
        values["original_prompt"] = claimed.prompt
    return {key: str(value) for key, value in values.items() if value is not None and value != ""}


class OutputWriter:
    """Encodes and stores a generation's outputs. Images and thumbnails encode and upload side by
    side on `pool` (its own threads, so a caller waiting on its uploads can never starve them).

    Every key written is appended to the caller's `written` list before the write starts, so a
    caller that loses its lease knows what it may have to remove."""

    def __init__(self, storage: Storage, pool: ThreadPoolExecutor) -> None:
        self.storage = storage
        self.pool = pool

    def store_all(
        self, claimed: ClaimedGeneration, result: GenerationResult, written: list[str]
    ) -> list[StoredOutput]:
        images = result.images
        facts = RenderFacts.of(result)
        thumbnails = [
            self.pool.submit(self._store_thumbnail, claimed, index, generated.image, written)
            for index, generated in enumerate(images)
        ]
        others = [
            self.pool.submit(self._store_output, claimed, index, generated, facts, written)
            for index, generated in enumerate(images)
            if index > 0
        ]
        stored = [self._store_output(claimed, 0, images[0], facts, written), *(future.result() for future in others)]
        for future in thumbnails:
            future.result()
        if len(images) < claimed.num_images and claimed.attempt > 1:
            # An earlier attempt may have stored more images than this one returned.
            self.delete(stored_keys(claimed.id, claimed.num_images, len(images)))
        return stored

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
    ) -> StoredOutput:
        image = generated.image
        png = encode_png(image, png_metadata(claimed, generated, facts), compress_level=PNG_COMPRESS_LEVEL)
        key = output_key(claimed.id, index)
        written.append(key)
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
            # Only a seed the provider says it used; a guessed one would not reproduce the image.
            seed=generated.seed,
        )

    def _store_thumbnail(self, claimed: ClaimedGeneration, index: int, image: Image.Image, written: list[str]) -> None:
        data = make_thumbnail(image)
        key = thumbnail_key(claimed.id, index)
        written.append(key)
        self.storage.put(key, data, "image/webp")
