"""Curating images: stars, deleting one image, the gallery of every image a person made, and a zip of
a selection. Functions flush only; the request commits (stored files go after the commit).

A deleted image keeps its row (marked deleted, so the generations that read it still know they had a
source) while its file and thumbnail are removed; it leaves every listing, count and cover at once.
"""

from __future__ import annotations

import unicodedata
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from imagestudio.assets.schemas import GalleryItem
from imagestudio.assets.service import EXTENSIONS, asset_out, delete_objects_after_commit, get_owned_asset
from imagestudio.kit.errors import Conflict, Invalid
from imagestudio.kit.pagination import keyset_page
from imagestudio.kit.text import like_pattern
from imagestudio.models import Asset, ChatSession, Generation, GenerationInput, RunStatus, rules
from imagestudio.models.types import utcnow
from imagestudio.storage.base import ObjectNotFound, Storage

_UNFINISHED = (RunStatus.queued.value, RunStatus.processing.value)
SLUG_MAX = 60
_ZIP_CHUNK = 256 * 1024


def set_starred(db: Session, owner_id: uuid.UUID, asset_id: uuid.UUID, starred: bool) -> Asset:
    asset = get_owned_asset(db, owner_id, asset_id)
    if starred and asset.starred_at is None:
        asset.starred_at = utcnow()
    elif not starred:
        asset.starred_at = None
    db.flush()
    return asset


def delete_asset(db: Session, storage: Storage, owner_id: uuid.UUID, asset_id: uuid.UUID) -> None:
    """Delete one image: its session's count and cover follow, its files go after the commit. Refused
    (409 asset_in_use) while a queued or running generation still has to read it."""
    asset = get_owned_asset(db, owner_id, asset_id)
    still_read = exists().where(
        GenerationInput.asset_id == asset.id,
        Generation.id == GenerationInput.generation_id,
        Generation.status.in_(_UNFINISHED),
    )
    if db.scalar(select(still_read)):
        raise Conflict("asset_in_use", "A generation that has not finished yet reads this image; cancel it or wait.")
    asset.deleted_at = utcnow()
    asset.starred_at = None
    db.flush()
    rules.output_removed(db, asset)
    delete_objects_after_commit(db, storage, [key for key in (asset.storage_key, asset.thumbnail_key) if key])


@dataclass(frozen=True)
class GalleryFilters:
    q: str | None = None
    provider: str | None = None
    model: str | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    starred: bool | None = None
    session_id: uuid.UUID | None = None


def gallery_page(
    db: Session, owner_id: uuid.UUID, filters: GalleryFilters, limit: int, cursor: str | None
) -> tuple[list[GalleryItem], str | None]:
    """The owner's generated images across sessions, newest first, filtered."""
    statement = (
        select(Asset)
        .join(Generation, Generation.id == Asset.generation_id)
        .where(Asset.owner_id == owner_id, Asset.kind == "output", Asset.deleted_at.is_(None))
    )
    for condition in _conditions(filters):
        statement = statement.where(condition)
    rows, next_cursor = keyset_page(db, statement, Asset.created_at, Asset.id, limit, cursor)
    return describe(db, rows), next_cursor


def _conditions(filters: GalleryFilters) -> list:
    conditions: list = []
    if filters.q:
        conditions.append(Generation.prompt.ilike(like_pattern(filters.q), escape="\\"))
    if filters.provider:
        conditions.append(func.coalesce(Generation.served_by, Generation.provider) == filters.provider)
    if filters.model:
        conditions.append(Generation.model == filters.model)
    if filters.seed is not None:
        conditions.append(Asset.seed == filters.seed)
    if filters.width is not None:
        conditions.append(Asset.width == filters.width)
    if filters.height is not None:
        conditions.append(Asset.height == filters.height)
    if filters.created_after is not None:
        conditions.append(Asset.created_at >= filters.created_after)
    if filters.created_before is not None:
        conditions.append(Asset.created_at < filters.created_before)
    if filters.starred is not None:
        conditions.append(Asset.starred_at.is_not(None) if filters.starred else Asset.starred_at.is_(None))
    if filters.session_id is not None:
        conditions.append(Asset.session_id == filters.session_id)
    return conditions


def describe(db: Session, assets: Sequence[Asset]) -> list[GalleryItem]:
    """Each image with what made it (prompt, provider, model), its session and step, and its download name."""
    generation_ids = {asset.generation_id for asset in assets if asset.generation_id}
    generations = (
        {g.id: g for g in db.scalars(select(Generation).where(Generation.id.in_(generation_ids)))}
        if generation_ids
        else {}
    )
    session_ids = {g.session_id for g in generations.values() if g.session_id}
    title_rows = db.execute(select(ChatSession.id, ChatSession.title).where(ChatSession.id.in_(session_ids)))
    titles = {row[0]: row[1] for row in title_rows} if session_ids else {}
    steps = _steps(db, session_ids)
    items = []
    for asset in assets:
        generation = generations.get(asset.generation_id) if asset.generation_id else None
        title = titles.get(generation.session_id) if generation and generation.session_id else None
        step = steps.get(generation.id) if generation else None
        items.append(
            GalleryItem(
                **asset_out(asset).model_dump(),
                prompt=generation.prompt if generation else None,
                provider=(generation.served_by or generation.provider) if generation else None,
                model=generation.model if generation else None,
                session_title=title,
                step=step,
                download_name=download_name(asset, title, step, generation.num_images if generation else 1),
            )
        )
    return items


def _steps(db: Session, session_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """Step numbers as the session page shows them: generations counted 1, 2, ... in creation order."""
    ids = list(session_ids)
    if not ids:
        return {}
    number = func.row_number().over(partition_by=Generation.session_id, order_by=rules.step_order())
    return {row[0]: row[1] for row in db.execute(select(Generation.id, number).where(Generation.session_id.in_(ids)))}


def slug(text: str | None) -> str:
    """ "A quiet harbour!" -> "a-quiet-harbour": letters and digits of any script (accents dropped), dashed."""
    decomposed = unicodedata.normalize("NFKD", text or "").lower()
    letters = "".join(ch if ch.isalnum() else " " for ch in decomposed if not unicodedata.combining(ch))
    return "-".join(letters.split())[:SLUG_MAX].rstrip("-")


def download_name(asset: Asset, session_title: str | None, step: int | None, batch_size: int) -> str:
    """ "a-quiet-harbour-step-3-2.png", as the session page names a download."""
    extension = EXTENSIONS.get(asset.mime_type, "bin")
    stem = slug(session_title) or "imagestudio"
    if step is None:
        return f"{stem}-{asset.id}.{extension}"
    suffix = f"-{(asset.batch_index or 0) + 1}" if batch_size > 1 else ""
    return f"{stem}-step-{step}{suffix}.{extension}"


def selected_assets(
    db: Session, owner_id: uuid.UUID, asset_ids: Sequence[uuid.UUID]
) -> tuple[list[GalleryItem], dict[uuid.UUID, str]]:
    """The owner's images among these ids, in the order given, and their storage keys; any other id
    is a 422 naming it."""
    found = {
        asset.id: asset
        for asset in db.scalars(
            select(Asset).where(Asset.id.in_(asset_ids), Asset.owner_id == owner_id, Asset.deleted_at.is_(None))
        )
    }
    for position, asset_id in enumerate(asset_ids):
        if asset_id not in found:
            raise Invalid(f"query.ids.{position}", "No such image.")
    ordered = [found[asset_id] for asset_id in dict.fromkeys(asset_ids)]
    return describe(db, ordered), {asset.id: asset.storage_key for asset in ordered}


class _Spout:
    """A write-only file for zipfile that hands out what was written so far (zipfile writes data
    descriptors when it cannot seek, so the archive streams)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._written = 0

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def stream_zip(storage: Storage, items: Sequence[GalleryItem], keys: dict[uuid.UUID, str]) -> Iterator[bytes]:
    """A zip of these images under their download names, produced while it is sent. Images are
    stored as they are (PNG and WebP are compressed already). A file missing from storage is left out."""
    spout = _Spout()
    used: set[str] = set()
    with zipfile.ZipFile(spout, mode="w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        for item in items:
            name = _unique(item.download_name, used)
            try:
                chunks = storage.open(keys[item.id], _ZIP_CHUNK)
                with archive.open(name, mode="w", force_zip64=True) as entry:
                    for chunk in chunks:
                        entry.write(chunk)
                        yield spout.take()
            except ObjectNotFound:
                continue
            yield spout.take()
    yield spout.take()


def _unique(name: str, used: set[str]) -> str:
    stem, dot, extension = name.rpartition(".")
    candidate, number = name, 2
    while candidate in used:
        candidate = f"{stem}-{number}{dot}{extension}"
        number += 1
    used.add(candidate)
    return candidate
