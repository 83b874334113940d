"""Projects: named groups of sessions with defaults for them, private to their owner unless published.

Publishing makes a random link (its token is shown once; only its SHA-256 is stored) under which
anyone may read the project (sessions/public.py); revoking clears the hash, so the link stops
working with the transaction that revokes it. Functions flush only; the request commits.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.accounts.security import hash_token
from imagestudio.kit.errors import ApiError, FieldError, not_found
from imagestudio.models import Project
from imagestudio.models.types import utcnow
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.sessions.project_schemas import ProjectCreate, ProjectOut, ProjectSettings, ProjectUpdate

# Where a public link points: the page; the API under /api/v1/public/projects/{token} serves the same.
PUBLIC_PAGE_PATH = "/p/"


@dataclass(frozen=True)
class Changed:
    project: Project
    # The token of a link made by this change (shown once).
    public_token: str | None = None


def project_out(project: Project, *, base_url: str = "", public_token: str | None = None) -> ProjectOut:
    out = ProjectOut.model_validate(project, from_attributes=True)
    if public_token is not None:
        out.public_url = f"{base_url.rstrip('/')}{PUBLIC_PAGE_PATH}{public_token}"
    return out


def get_owned_project(db: Session, owner_id: uuid.UUID, project_id: uuid.UUID) -> Project:
    """The project if owner_id owns it; 404 alike for missing and foreign projects."""
    project = db.scalar(select(Project).where(Project.id == project_id, Project.owner_id == owner_id))
    if project is None:
        raise not_found("project")
    return project


def _settings_problem(field: str, message: str) -> ApiError:
    return ApiError(422, "validation_failed", "The request has invalid fields.", [FieldError(field, message)])


def checked_settings(settings: ProjectSettings, registry: ProviderRegistry) -> dict:
    """The settings as stored, once the provider is one this studio has and the model one it lists."""
    if settings.provider is not None:
        if settings.provider not in registry.names():
            raise _settings_problem("settings.provider", f"Unknown provider {settings.provider!r}.")
        if settings.model is not None and registry.capabilities(settings.provider).model(settings.model) is None:
            raise _settings_problem("settings.model", f"No such model of {settings.provider!r}: {settings.model!r}.")
    return settings.stored()


def _publish(project: Project) -> str:
    token = secrets.token_urlsafe(32)
    project.public_token_hash = hash_token(token)
    project.is_public = True
    project.published_at = utcnow()
    return token


def _revoke(project: Project) -> None:
    project.public_token_hash = None
    project.is_public = False
    project.published_at = None


def create_project(db: Session, owner_id: uuid.UUID, body: ProjectCreate, registry: ProviderRegistry) -> Changed:
    project = Project(
        owner_id=owner_id,
        name=body.name,
        description=body.description,
        status=body.status,
        settings=checked_settings(body.settings, registry),
        is_public=False,
    )
    token = _publish(project) if body.is_public else None
    db.add(project)
    db.flush()
    return Changed(project, token)


def update_project(
    db: Session, owner_id: uuid.UUID, project_id: uuid.UUID, body: ProjectUpdate, registry: ProviderRegistry
) -> Changed:
    """Rename, describe, set the status or settings; publish (a new link) or revoke the link."""
    project = get_owned_project(db, owner_id, project_id)
    given = body.model_fields_set
    for name in ("name", "description", "status"):
        if name in given:
            setattr(project, name, getattr(body, name))
    if body.settings is not None:
        project.settings = checked_settings(body.settings, registry)
    token = None
    if body.is_public is True and not project.is_public:
        token = _publish(project)
    elif body.is_public is False and project.is_public:
        _revoke(project)
    project.updated_at = utcnow()
    db.flush()
    return Changed(project, token)


def delete_project(db: Session, owner_id: uuid.UUID, project_id: uuid.UUID) -> None:
    """Delete a project (and so its public link); its sessions stay, outside any project."""
    db.delete(get_owned_project(db, owner_id, project_id))
    db.flush()
