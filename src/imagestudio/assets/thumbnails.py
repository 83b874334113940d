"""Thumbnails made on first request and kept.

A generation's worker stores only its images. The first request for an output's thumbnail decodes
the image, makes the WebP (at most 256 pixels a side), stores it under a key derived from the
image's own (`storage.keys.thumbnail_key_of`), and records the key with one conditional UPDATE.
Later requests serve the stored one.

Two first requests at once are harmless: both write the same bytes to the same key (a put replaces
atomically) and both UPDATEs agree. The object is durable before its key is recorded, as with every
object a row points at. A request that loses a race with the asset's deletion removes what it wrote,
since the deleting transaction saw no thumbnail to remove. A thumbnail is derived data: if its object
is missing (a sweep that ran between the write and the UPDATE), the next request makes it again.
"""

from __future__ import annotations

from sqlalchemy import or_, select, update

from imagestudio.assets.images import load_image, make_thumbnail
from imagestudio.db import Database
from imagestudio.models import Asset
from imagestudio.storage.base import ObjectNotFound, Storage
from imagestudio.storage.keys import thumbnail_key_of


def thumbnail_bytes(database: Database, storage: Storage, asset: Asset) -> bytes:
    """The asset's thumbnail, made and kept if it has none yet. Raises ObjectNotFound when the
    image itself is missing (or the asset went away meanwhile)."""
    if asset.thumbnail_key is not None:
        try:
            return storage.get(asset.thumbnail_key)
        except ObjectNotFound:
            pass  # made again below, at the key its row names
    key = asset.thumbnail_key or thumbnail_key_of(asset.storage_key)
    with load_image(storage.get(asset.storage_key)) as image:
        data = make_thumbnail(image)
    storage.put(key, data, "image/webp")
    if asset.thumbnail_key is None and not _record(database, storage, asset, key):
        raise ObjectNotFound(asset.storage_key)
    return data


def _record(database: Database, storage: Storage, asset: Asset, key: str) -> bool:
    """Point the asset at its new thumbnail unless it was deleted meanwhile; False (and the object
    removed again) when it was."""
    assets = Asset.__table__
    with database.writing() as session:
        recorded = session.execute(
            update(assets)
            .where(
                assets.c.id == asset.id,
                assets.c.deleted_at.is_(None),
                or_(assets.c.thumbnail_key.is_(None), assets.c.thumbnail_key == key),
            )
            .values(thumbnail_key=key)
            .returning(assets.c.id)
        ).first()
        if recorded is None:
            current = session.execute(
                select(assets.c.thumbnail_key).where(assets.c.id == asset.id, assets.c.deleted_at.is_(None))
            ).first()
    if recorded is not None:
        return True
    if current is None or current.thumbnail_key != key:
        storage.delete(key)
    return current is not None
