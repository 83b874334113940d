"""Where a generation's outputs are stored.

Every attempt writes under keys of its own (outputs/<generation>/a<attempt>/<index>.png), and only
before the fenced success that points at them is recorded. So an object a recorded success points
at is never written again: a worker that lost its lease, coming back late, can only create objects
under its own attempt, which no row references and the sweeper removes. Objects stored before
attempts were part of the key (outputs/<generation>/<index>.png) stay where their rows say.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import PurePosixPath

from imagestudio.storage.base import Storage

OUTPUTS = "outputs"
THUMBNAILS = "thumbnails"


def output_key(generation_id: uuid.UUID, attempt: int, batch_index: int) -> str:
    return f"{OUTPUTS}/{generation_id}/a{attempt}/{batch_index}.png"


def thumbnail_key(generation_id: uuid.UUID, attempt: int, batch_index: int) -> str:
    return f"{THUMBNAILS}/{generation_id}/a{attempt}/{batch_index}.webp"


def thumbnail_key_of(storage_key: str) -> str:
    """Where the thumbnail of the object at `storage_key` is kept once made: an output's beside its
    attempt's other objects (thumbnails/<generation>/a<attempt>/<index>.webp, so listing and sweeping
    a generation finds it), anything else under thumbnails/ by its own path."""
    path = PurePosixPath(storage_key.removeprefix(f"{OUTPUTS}/"))
    return f"{THUMBNAILS}/{path.with_suffix('.webp')}"


def preview_key(generation_id: uuid.UUID, attempt: int, number: int) -> str:
    """An intermediate picture shown while a generation runs."""
    return f"previews/{generation_id}/{attempt}-{number}.png"


def attempt_keys(generation_id: uuid.UUID, attempt: int, num_images: int) -> list[str]:
    """Every key one attempt may write (outputs and thumbnails)."""
    return [
        key
        for index in range(num_images)
        for key in (output_key(generation_id, attempt, index), thumbnail_key(generation_id, attempt, index))
    ]


def generation_prefixes(generation_id: uuid.UUID) -> tuple[str, str]:
    return f"{OUTPUTS}/{generation_id}/", f"{THUMBNAILS}/{generation_id}/"


def stored_objects(storage: Storage, generation_ids: Iterable[uuid.UUID]) -> list[str]:
    """Every object any attempt of these generations stored, found by listing (so objects a late
    writer created after the last look are found too)."""
    return [
        key
        for generation_id in generation_ids
        for prefix in generation_prefixes(generation_id)
        for key in storage.list(prefix)
    ]


def code_key(generation_id: uuid.UUID, attempt: int) -> str:
    """A UI generation's document, one per attempt like outputs (never under outputs/: no asset row
    names it, and the sweeper keeps only what asset rows name)."""
    return f"code/{generation_id}/a{attempt}.html"
