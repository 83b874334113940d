"""Assets: accepting uploads, finding a user's assets, and removing stored objects after commit.

Uploads are decoded from their content (never their name), re-encoded clean, deduplicated per user
and stored under keys nobody can guess. Functions flush only; the request commits.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from imagestudio.assets.images import (
    ALL_UPLOAD_FORMATS,
    ImageTooLarge,
    UnsupportedImage,
    decode_upload,
    make_thumbnail,
    sniff_format,
)
from imagestudio.assets.schemas import AssetOut
from imagestudio.config import Settings
from imagestudio.kit.errors import ApiError, FieldError, not_found
from imagestudio.models import Asset, ChatSession, InputPurpose
from imagestudio.models.types import utcnow
from imagestudio.storage.base import Storage

log = logging.getLogger(__name__)

ASSETS_PATH = "/api/v1/assets"
EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
# Signatures of the accepted formats: a file that starts like one but does not decode is damaged
# (422), anything else is the wrong kind of file (415).
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")
# Word characters of any script, digits, dot, dash and underscore (no separators, quotes or controls).
_UNSAFE_UNICODE = re.compile(r"[^\w.-]+")
FILENAME_MAX = 100
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")


def content_url(asset_id: uuid.UUID) -> str:
    return f"{ASSETS_PATH}/{asset_id}/content"


def thumbnail_url(asset_id: uuid.UUID) -> str:
    return f"{ASSETS_PATH}/{asset_id}/thumbnail"


def asset_out(asset: Asset) -> AssetOut:
    return AssetOut(
        id=asset.id,
        kind=asset.kind,
        purpose=asset.purpose,
        session_id=asset.session_id,
        generation_id=asset.generation_id,
        batch_index=asset.batch_index,
        mime_type=asset.mime_type,
        bytes=asset.bytes,
        width=asset.width,
        height=asset.height,
        sha256=asset.sha256,
        seed=asset.seed,
        created_at=asset.created_at,
        starred_at=asset.starred_at,
        content_url=content_url(asset.id),
        thumbnail_url=thumbnail_url(asset.id),
    )


def get_owned_asset(db: Session, owner_id: uuid.UUID, asset_id: uuid.UUID) -> Asset:
    """The asset if owner_id owns it and it is not deleted; 404 alike for missing and foreign ones."""
    asset = db.scalar(select(Asset).where(Asset.id == asset_id, Asset.owner_id == owner_id, Asset.deleted_at.is_(None)))
    if asset is None:
        raise not_found("asset")
    return asset


def safe_filename(asset: Asset, *, thumbnail: bool = False) -> str:
    """A filename for Content-Disposition: ASCII letters, digits, dot, dash and underscore only."""
    if asset.kind == "output":
        stem = f"imagestudio-{asset.generation_id}-{asset.batch_index}"
    else:
        original = (asset.original_filename or "").rsplit(".", 1)[0]
        stem = _UNSAFE_FILENAME.sub("-", original).strip(".-_")[:FILENAME_MAX] or f"upload-{asset.id}"
    if thumbnail:
        return f"{stem}-thumbnail.webp"
    return f"{stem}.{EXTENSIONS.get(asset.mime_type, 'bin')}"


def download_disposition(asset: Asset, requested: str) -> str:
    """Content-Disposition for a download (RFC 6266): an ASCII filename for old clients, and filename*
    in UTF-8 that keeps the letters of any script ("東京-step-1.png")."""
    ascii_name = download_filename(asset, requested)
    stem = _UNSAFE_UNICODE.sub("-", _EXTENSION.sub("", requested)).strip(".-_")[:FILENAME_MAX]
    if not stem:
        return f'attachment; filename="{ascii_name}"'
    utf8_name = quote(f"{stem}.{EXTENSIONS.get(asset.mime_type, 'bin')}", safe="")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{utf8_name}"


def download_filename(asset: Asset, requested: str) -> str:
    """The name a download asked for (e.g. "harbour-step-3-2"), made safe, with the extension of the asset's type."""
    stem = _UNSAFE_FILENAME.sub("-", _EXTENSION.sub("", requested)).strip(".-_")[:FILENAME_MAX]
    if not stem:
        return safe_filename(asset)
    return f"{stem}.{EXTENSIONS.get(asset.mime_type, 'bin')}"


# --- uploads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A multipart upload as read (within the byte limit) from the request."""

    data: bytes
    filename: str | None
    purpose: InputPurpose
    session_id: uuid.UUID | None


def _upload_problem(status: int, code: str, detail: str) -> ApiError:
    return ApiError(status, code, detail, [FieldError("file", detail)])


def _decode(data: bytes, settings: Settings):
    if not data:
        raise _upload_problem(422, "empty_file", "The file is empty.")
    try:
        return decode_upload(data, max_pixels=settings.max_upload_pixels, allowed=ALL_UPLOAD_FORMATS)
    except ImageTooLarge as error:
        raise _upload_problem(422, "image_too_large", f"The image is too large: {error}.") from None
    except UnsupportedImage as error:
        if sniff_format(data) is not None:
            raise _upload_problem(422, "invalid_image", f"The image cannot be read: {error}.") from None
        raise _upload_problem(415, "unsupported_image", f"Unsupported file: {error}.") from None


def store_upload(
    db: Session, storage: Storage, settings: Settings, owner_id: uuid.UUID, upload: Upload
) -> tuple[Asset, bool]:
    """Validate, clean and store an upload. Answers the asset and whether it is new: the same cleaned
    image uploaded again by the same user, for the same purpose and session, is the same asset."""
    if upload.session_id is not None:
        owner = db.scalar(select(ChatSession.owner_id).where(ChatSession.id == upload.session_id))
        if owner != owner_id:
            raise ApiError(
                422,
                "validation_failed",
                "The request has invalid fields.",
                [FieldError("session_id", "No such session.")],
            )
    decoded = _decode(upload.data, settings)
    # Deduplication stays within one session: deleting a session deletes its uploads, which must
    # not pull images out from under another session.
    existing = db.scalars(
        select(Asset)
        .where(
            Asset.owner_id == owner_id,
            Asset.sha256 == decoded.sha256,
            Asset.kind == "upload",
            Asset.purpose == upload.purpose.value,
            Asset.session_id.is_(None) if upload.session_id is None else Asset.session_id == upload.session_id,
            Asset.deleted_at.is_(None),
        )
        .order_by(Asset.created_at)
        .limit(1)
    ).first()
    if existing is not None:
        return existing, False

    token = secrets.token_hex(16)
    key = f"uploads/{token}.{EXTENSIONS[decoded.mime_type]}"
    thumbnail_key = f"thumbnails/uploads/{token}.webp"
    thumbnail = make_thumbnail(decoded.image)
    written: list[str] = []
    try:
        storage.put(key, decoded.data, decoded.mime_type)
        written.append(key)
        storage.put(thumbnail_key, thumbnail, "image/webp")
        written.append(thumbnail_key)
        now = utcnow()
        asset = Asset(
            owner_id=owner_id,
            session_id=upload.session_id,
            kind="upload",
            purpose=upload.purpose.value,
            storage_key=key,
            thumbnail_key=thumbnail_key,
            mime_type=decoded.mime_type,
            bytes=len(decoded.data),
            width=decoded.width,
            height=decoded.height,
            sha256=decoded.sha256,
            original_filename=_clean_original_name(upload.filename),
            created_at=now,
            updated_at=now,
        )
        db.add(asset)
        db.flush()
    except BaseException:
        delete_objects(storage, written)
        raise
    # Should the transaction fail after this point, nothing refers to the objects: remove them then.
    delete_objects_on_rollback(db, storage, written)
    return asset, True


def _clean_original_name(name: str | None) -> str | None:
    if not name:
        return None
    # Keep only the last path segment; browsers on some systems send full paths.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if char.isprintable()).encode("utf-8", "ignore").decode()[:255]
    return name or None


# --- stored objects follow their rows ----------------------------------------------------------

_AFTER_COMMIT_KEY = "imagestudio.delete_after_commit"
_AFTER_ROLLBACK_KEY = "imagestudio.delete_after_rollback"


def delete_objects(storage: Storage, keys: Iterable[str]) -> None:
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # the rows are gone either way; a leftover file is only wasted space
            log.exception("could not delete stored object %s", key)


def delete_objects_after_commit(db: Session, storage: Storage, keys: Iterable[str]) -> None:
    """Delete these objects once (and only if) the transaction commits, so a failed request never
    leaves rows pointing at deleted files."""
    pending: list[tuple[Storage, list[str]]] = db.info.setdefault(_AFTER_COMMIT_KEY, [])
    pending.append((storage, sorted(set(keys))))


def delete_objects_on_rollback(db: Session, storage: Storage, keys: Iterable[str]) -> None:
    pending: list[tuple[Storage, list[str]]] = db.info.setdefault(_AFTER_ROLLBACK_KEY, [])
    pending.append((storage, list(keys)))


@event.listens_for(Session, "after_commit")
def _delete_committed(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released; the transaction itself has not committed yet
    session.info.pop(_AFTER_ROLLBACK_KEY, None)
    for storage, keys in session.info.pop(_AFTER_COMMIT_KEY, []):
        delete_objects(storage, keys)


@event.listens_for(Session, "after_soft_rollback")
def _delete_rolled_back(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is not None:
        return  # a savepoint: the outer transaction may still commit
    session.info.pop(_AFTER_COMMIT_KEY, None)
    for storage, keys in session.info.pop(_AFTER_ROLLBACK_KEY, []):
        delete_objects(storage, keys)
