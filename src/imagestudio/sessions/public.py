"""A published project as anyone with its link sees it: read-only, no account needed.

It shows the project's name and description, and per session its title and finished work: image
generations (prompts and images) and UI generations (prompts and sandboxed previews). Nothing else
reaches it: not the owner (no name, no email), not other projects, not uploads, failed work or
settings. Images are served only when they are outputs of the project's sessions, and UI previews
only through a route under the link itself, which checks the link on every request, so revoking it
ends access to them at once. A revoked or unknown link is answered 404, the same for both.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.accounts.security import hash_token
from imagestudio.kit.errors import not_found
from imagestudio.models import Asset, ChatSession, Generation, Project, RunStatus, UiGeneration
from imagestudio.storage import Storage
from imagestudio.uicode import service as uicode

PUBLIC_API_PATH = "/api/v1/public/projects"


class PublicImage(BaseModel):
    id: uuid.UUID
    width: int | None
    height: int | None
    content_url: str
    thumbnail_url: str


class PublicItem(BaseModel):
    """One finished piece of work of a session: a generation with its prompt and images."""

    kind: Literal["generation"]
    id: uuid.UUID
    type: str
    prompt: str
    negative_prompt: str | None
    provider: str
    model: str
    width: int
    height: int
    images: list[PublicImage]
    created_at: datetime


class PublicUiItem(BaseModel):
    """One finished UI generation of a session: its prompt and its sandboxed preview, served under
    the project's link (the link is checked on every request)."""

    kind: Literal["ui"]
    id: uuid.UUID
    title: str | None
    prompt: str
    model: str
    code_bytes: int | None
    preview_url: str
    created_at: datetime


PublicEntry = Annotated[PublicItem | PublicUiItem, Field(discriminator="kind")]


class PublicSession(BaseModel):
    id: uuid.UUID
    title: str
    created_at: datetime
    items: list[PublicEntry]


class PublicProject(BaseModel):
    name: str
    description: str
    status: str
    published_at: datetime | None
    sessions: list[PublicSession]


def published_project(db: Session, token: str) -> Project:
    """The project this link publishes; 404 for an unknown or revoked link."""
    project = db.scalar(
        select(Project).where(Project.public_token_hash == hash_token(token), Project.is_public.is_(True))
    )
    if project is None:
        raise not_found("project")
    return project


def _outputs(db: Session, generation_ids: list[uuid.UUID], token: str) -> dict[uuid.UUID, list[PublicImage]]:
    images: dict[uuid.UUID, list[PublicImage]] = defaultdict(list)
    if not generation_ids:
        return images
    rows = db.scalars(
        select(Asset)
        .where(Asset.generation_id.in_(generation_ids), Asset.kind == "output", Asset.deleted_at.is_(None))
        .order_by(Asset.generation_id, Asset.batch_index)
    )
    base = f"{PUBLIC_API_PATH}/{token}/assets"
    for asset in rows:
        assert asset.generation_id is not None
        images[asset.generation_id].append(
            PublicImage(
                id=asset.id,
                width=asset.width,
                height=asset.height,
                content_url=f"{base}/{asset.id}/content",
                thumbnail_url=f"{base}/{asset.id}/thumbnail",
            )
        )
    return images


def _ui_items(
    db: Session, project: Project, session_ids: list[uuid.UUID], token: str
) -> list[tuple[uuid.UUID, PublicUiItem]]:
    """The project's succeeded UI generations that have stored code, in the given sessions only,
    each with its session."""
    shown = set(session_ids)
    base = f"{PUBLIC_API_PATH}/{token}/ui-generations"
    return [
        (
            view.row.session_id,
            PublicUiItem(
                kind="ui",
                id=view.row.id,
                title=view.row.title,
                prompt=view.row.prompt,
                model=view.job.model,
                code_bytes=view.row.code_bytes,
                preview_url=f"{base}/{view.row.id}/preview",
                created_at=view.row.created_at,
            ),
        )
        for view in uicode.project_ui_generations(db, project.id)
        if view.row.session_id in shown and view.row.storage_key is not None
    ]


def session_items(
    db: Session, project: Project, session_ids: list[uuid.UUID], token: str
) -> dict[uuid.UUID, list[PublicEntry]]:
    """What a published project shows of each of its sessions, oldest first: every succeeded
    generation with its prompt and images, and every succeeded UI generation with its preview."""
    items: dict[uuid.UUID, list[PublicEntry]] = defaultdict(list)
    if not session_ids:
        return items
    generations = db.scalars(
        select(Generation)
        .where(Generation.session_id.in_(session_ids), Generation.status == RunStatus.succeeded.value)
        .order_by(Generation.created_at, Generation.id)
    ).all()
    images = _outputs(db, [generation.id for generation in generations], token)
    for generation in generations:
        if generation.session_id is None or not images.get(generation.id):
            continue
        items[generation.session_id].append(
            PublicItem(
                kind="generation",
                id=generation.id,
                type=generation.type,
                prompt=generation.prompt,
                negative_prompt=generation.negative_prompt,
                provider=generation.provider,
                model=generation.model,
                width=generation.width,
                height=generation.height,
                images=images[generation.id],
                created_at=generation.created_at,
            )
        )
    ui_items = _ui_items(db, project, session_ids, token)
    for session_id, ui_item in ui_items:
        items[session_id].append(ui_item)
    if ui_items:
        for entries in items.values():
            entries.sort(key=lambda entry: (entry.created_at, entry.id))
    return items


def public_view(db: Session, token: str) -> PublicProject:
    project = published_project(db, token)
    sessions = db.scalars(
        select(ChatSession)
        .where(ChatSession.project_id == project.id, ChatSession.owner_id == project.owner_id)
        .order_by(ChatSession.created_at, ChatSession.id)
    ).all()
    items = session_items(db, project, [session.id for session in sessions], token)
    return PublicProject(
        name=project.name,
        description=project.description,
        status=project.status,
        published_at=project.published_at,
        sessions=[
            PublicSession(id=session.id, title=session.title, created_at=session.created_at, items=items[session.id])
            for session in sessions
        ],
    )


def public_image(db: Session, token: str, asset_id: uuid.UUID) -> Asset:
    """An image of the published project: an output of one of its sessions, else 404."""
    project = published_project(db, token)
    asset = db.scalar(
        select(Asset)
        .join(ChatSession, ChatSession.id == Asset.session_id)
        .where(
            Asset.id == asset_id,
            Asset.kind == "output",
            Asset.deleted_at.is_(None),
            ChatSession.project_id == project.id,
            ChatSession.owner_id == project.owner_id,
        )
    )
    if asset is None:
        raise not_found("asset")
    return asset


def public_ui_code(db: Session, storage: Storage, token: str, ui_id: uuid.UUID) -> str:
    """The document of a UI generation of the published project (a succeeded one of its sessions),
    else 404. The link is checked here, on every request: a revoked link serves nothing more."""
    project = published_project(db, token)
    row = db.scalar(
        select(UiGeneration)
        .join(ChatSession, ChatSession.id == UiGeneration.session_id)
        .join(Generation, Generation.id == UiGeneration.generation_id)
        .where(
            UiGeneration.id == ui_id,
            ChatSession.project_id == project.id,
            ChatSession.owner_id == project.owner_id,
            Generation.status == RunStatus.succeeded.value,
        )
    )
    code = uicode.read_code(storage, row) if row is not None else None
    if code is None:
        raise not_found("UI generation")
    return code
