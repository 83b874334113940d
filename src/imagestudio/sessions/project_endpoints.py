"""/api/v1/projects. Thin: the work is in sessions/projects.py."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from imagestudio.accounts.deps import CurrentUser, DbSession
from imagestudio.container import ContainerDep
from imagestudio.kit.pagination import Page, PageParams, keyset_page
from imagestudio.models import Project
from imagestudio.sessions import projects
from imagestudio.sessions.project_schemas import ProjectCreate, ProjectOut, ProjectUpdate

router = APIRouter(prefix="/projects", tags=["projects"])


@router.get("", response_model=Page[ProjectOut])
def list_projects(db: DbSession, user: CurrentUser, page: PageParams) -> Page[ProjectOut]:
    """Your projects, newest first."""
    statement = select(Project).where(Project.owner_id == user.id)
    rows, next_cursor = keyset_page(db, statement, Project.created_at, Project.id, page.limit, page.cursor)
    return Page(items=[projects.project_out(row) for row in rows], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=ProjectOut)
def post_project(
    body: ProjectCreate, request: Request, db: DbSession, user: CurrentUser, container: ContainerDep
) -> ProjectOut:
    """Create a project; with `is_public` the answer carries its public link (shown this once)."""
    made = projects.create_project(db, user.id, body, container.registry)
    return projects.project_out(made.project, base_url=str(request.base_url), public_token=made.public_token)


@router.get("/{project_id}", response_model=ProjectOut)
def get_project(project_id: uuid.UUID, db: DbSession, user: CurrentUser) -> ProjectOut:
    return projects.project_out(projects.get_owned_project(db, user.id, project_id))


@router.patch("/{project_id}", response_model=ProjectOut)
def patch_project(
    project_id: uuid.UUID,
    body: ProjectUpdate,
    request: Request,
    db: DbSession,
    user: CurrentUser,
    container: ContainerDep,
) -> ProjectOut:
    """Rename, describe, set `status` or `settings`; `is_public` true publishes at a new link (in this
    answer only), false revokes the link at once."""
    changed = projects.update_project(db, user.id, project_id, body, container.registry)
    return projects.project_out(changed.project, base_url=str(request.base_url), public_token=changed.public_token)


@router.delete("/{project_id}", status_code=204, response_class=Response)
def delete_project(project_id: uuid.UUID, db: DbSession, user: CurrentUser) -> Response:
    """Delete a project; its sessions stay, outside any project."""
    projects.delete_project(db, user.id, project_id)
    return Response(status_code=204)
