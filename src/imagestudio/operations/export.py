"""A person's own work as a zip: original images, and a JSON document per generation with everything
needed to understand or reproduce it (prompt, options, seed, provider, model, parent, timings) and
the captions of its images.

Layout:
    index.json                                   what the archive holds (sessions, generation files)
    <session-folder>/session.json                 title, dates, project
    <session-folder>/step-<n>-<generation id>.json
    <session-folder>/step-<n>-<index>.<ext>       the outputs, as stored
    <session-folder>/inputs/<asset id>.<ext>      uploads the generations read
Generations outside any session go in a folder named `no-session`.
"""

from __future__ import annotations

import json
import re
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.models import Asset, Caption, ChatSession, Generation, GenerationInput, rules
from imagestudio.models.types import utcnow
from imagestudio.storage.base import ObjectNotFound, Storage

EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Scope:
    """Which of the owner's things go in: one session, one project's sessions, or everything."""

    owner_id: uuid.UUID
    session_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None


def _folder(chat: ChatSession | None) -> str:
    if chat is None:
        return "no-session"
    title = _UNSAFE.sub("-", chat.title).strip(".-_")[:60] or "session"
    return f"{title}-{str(chat.id)[:8]}"


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _generation_document(
    generation: Generation,
    step: int,
    inputs: list[GenerationInput],
    outputs: list[Asset],
    captions: dict[uuid.UUID, list[Caption]],
    files: dict[uuid.UUID, str],
) -> dict[str, Any]:
    return {
        "id": str(generation.id),
        "step": step,
        "type": generation.type,
        "status": generation.status,
        "prompt": generation.prompt,
        "negative_prompt": generation.negative_prompt,
        "enhanced_prompt": generation.enhanced_prompt,
        "prompt_options": generation.prompt_options,
        "provider": generation.provider,
        "served_by": generation.served_by,
        "model": generation.model,
        "width": generation.width,
        "height": generation.height,
        "aspect_ratio": generation.aspect_ratio,
        "num_images": generation.num_images,
        "params": {
            "steps": generation.steps,
            "guidance": generation.guidance,
            "strength": generation.strength,
            "scheduler": generation.scheduler,
            "seed": generation.seed,
            "upscale_factor": generation.upscale_factor,
            **(generation.params or {}),
        },
        "parent_generation_id": str(generation.parent_generation_id) if generation.parent_generation_id else None,
        "retried_from_id": str(generation.retried_from_id) if generation.retried_from_id else None,
        "inputs": [
            {"role": item.role, "asset_id": str(item.asset_id), "file": files.get(item.asset_id)} for item in inputs
        ],
        "outputs": [
            {
                "asset_id": str(asset.id),
                "index": asset.batch_index,
                "file": files.get(asset.id),
                "seed": asset.seed,
                "width": asset.width,
                "height": asset.height,
                "sha256": asset.sha256,
                "captions": [
                    {"text": c.text, "provider": c.provider, "model": c.model} for c in captions.get(asset.id, [])
                ],
            }
            for asset in outputs
        ],
        "error": {"code": generation.error_code, "message": generation.error_message}
        if generation.error_code
        else None,
        "cost": str(generation.cost) if generation.cost is not None else None,
        "created_at": _iso(generation.created_at),
        "started_at": _iso(generation.started_at),
        "completed_at": _iso(generation.completed_at),
        "duration_ms": generation.duration_ms,
    }


def _sessions(db: Session, scope: Scope) -> list[ChatSession]:
    statement = select(ChatSession).where(ChatSession.owner_id == scope.owner_id).order_by(ChatSession.created_at)
    if scope.session_id is not None:
        statement = statement.where(ChatSession.id == scope.session_id)
    if scope.project_id is not None:
        statement = statement.where(ChatSession.project_id == scope.project_id)
    return list(db.scalars(statement))


def _generations(db: Session, scope: Scope, session_ids: Iterable[uuid.UUID]) -> list[Generation]:
    ids = list(session_ids)
    statement = select(Generation).where(Generation.owner_id == scope.owner_id).order_by(*rules.step_order())
    if scope.session_id is None and scope.project_id is None:
        return list(db.scalars(statement))
    return list(db.scalars(statement.where(Generation.session_id.in_(ids)))) if ids else []


def _copy(storage: Storage, archive: zipfile.ZipFile, key: str, name: str) -> bool:
    info = zipfile.ZipInfo(name, date_time=utcnow().timetuple()[:6])
    try:
        with archive.open(info, "w", force_zip64=True) as out:
            for chunk in storage.open(key):
                out.write(chunk)
    except ObjectNotFound:
        return False
    return True


@dataclass
class _Related:
    """Everything the chosen generations refer to, loaded in four queries whatever their number."""

    outputs: dict[uuid.UUID, list[Asset]]
    inputs: dict[uuid.UUID, list[GenerationInput]]
    input_assets: dict[uuid.UUID, Asset]
    captions: dict[uuid.UUID, list[Caption]]


def _related(db: Session, generation_ids: list[uuid.UUID]) -> _Related:
    related = _Related(defaultdict(list), defaultdict(list), {}, defaultdict(list))
    if not generation_ids:
        return related
    for asset in db.scalars(
        select(Asset)
        .where(Asset.generation_id.in_(generation_ids), Asset.deleted_at.is_(None))
        .order_by(Asset.batch_index)
    ):
        related.outputs[asset.generation_id].append(asset)
    for item in db.scalars(select(GenerationInput).where(GenerationInput.generation_id.in_(generation_ids))):
        related.inputs[item.generation_id].append(item)
    input_ids = [item.asset_id for items in related.inputs.values() for item in items]
    if input_ids:
        related.input_assets = {asset.id: asset for asset in db.scalars(select(Asset).where(Asset.id.in_(input_ids)))}
    output_ids = [asset.id for assets in related.outputs.values() for asset in assets]
    if output_ids:
        for caption in db.scalars(select(Caption).where(Caption.asset_id.in_(output_ids))):
            related.captions[caption.asset_id].append(caption)
    return related


def _extension(asset: Asset) -> str:
    return EXTENSIONS.get(asset.mime_type, "bin")


class _Writer:
    """Fills one archive: session documents, then each generation's files and document."""

    def __init__(self, archive: zipfile.ZipFile, storage: Storage, related: _Related) -> None:
        self.archive = archive
        self.storage = storage
        self.related = related
        self.index: dict[str, Any] = {
            "exported_at": utcnow().isoformat(),
            "sessions": [],
            "generations": 0,
            "images": 0,
        }
        self.steps: dict[uuid.UUID | None, int] = defaultdict(int)
        self.written: set[str] = set()

    def session(self, chat: ChatSession) -> None:
        folder = _folder(chat)
        document = {
            "id": str(chat.id),
            "title": chat.title,
            "project_id": str(chat.project_id) if chat.project_id else None,
            "created_at": _iso(chat.created_at),
            "updated_at": _iso(chat.updated_at),
        }
        self.archive.writestr(f"{folder}/session.json", json.dumps(document, indent=2))
        self.index["sessions"].append({"id": str(chat.id), "title": chat.title, "folder": folder})

    def _copy_once(self, key: str, name: str) -> bool:
        if name in self.written:
            return True
        if not _copy(self.storage, self.archive, key, name):
            return False
        self.written.add(name)
        return True

    def generation(self, generation: Generation, chat: ChatSession | None) -> None:
        folder = _folder(chat)
        self.steps[generation.session_id] += 1
        step = self.steps[generation.session_id]
        files: dict[uuid.UUID, str] = {}
        for asset in self.related.outputs[generation.id]:
            name = f"{folder}/step-{step}-{asset.batch_index}.{_extension(asset)}"
            if self._copy_once(asset.storage_key, name):
                files[asset.id] = name
                self.index["images"] += 1
        for item in self.related.inputs[generation.id]:
            asset = self.related.input_assets.get(item.asset_id)
            name = f"{folder}/inputs/{item.asset_id}.{_extension(asset)}" if asset else ""
            if asset is not None and self._copy_once(asset.storage_key, name):
                files[asset.id] = name
        document = _generation_document(
            generation,
            step,
            self.related.inputs[generation.id],
            self.related.outputs[generation.id],
            self.related.captions,
            files,
        )
        self.archive.writestr(f"{folder}/step-{step}-{generation.id}.json", json.dumps(document, indent=2))
        self.index["generations"] += 1


def write_export(db: Session, storage: Storage, scope: Scope, destination: IO[bytes]) -> dict[str, Any]:
    """Write the zip for `scope` to `destination`; answers its index."""
    chats = _sessions(db, scope)
    by_id = {chat.id: chat for chat in chats}
    generations = _generations(db, scope, by_id)
    related = _related(db, [generation.id for generation in generations])
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        writer = _Writer(archive, storage, related)
        for chat in chats:
            writer.session(chat)
        for generation in generations:
            writer.generation(generation, by_id.get(generation.session_id) if generation.session_id else None)
        archive.writestr("index.json", json.dumps(writer.index, indent=2))
    return writer.index
