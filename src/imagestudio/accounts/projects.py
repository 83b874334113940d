"""Projects: named groups of sessions, private to their owner."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.accounts.deps import CurrentUser, DbSession
from imagestudio.accounts.schemas import RequestModel, ResponseModel
from imagestudio.kit.errors import not_found
from imagestudio.kit.openapi import not_null
from imagestudio.kit.pagination import Page, PageParams, keyset_page
from imagestudio.models import Project

router = APIRouter(prefix="/projects", tags=["projects"])

ProjectName = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=10_000)]
Status = Literal["draft", "active", "completed", "archived"]


def _name_not_blank(value: str | None) -> str | None:
    if value is None:
        raise ValueError("may not be null")
    if not value.strip():
        raise ValueError("may not be blank")
    return value.strip()


class ProjectCreate(RequestModel):
    name: ProjectName
    description: Description = ""
    status: Status = "active"

    _check_name = field_validator("name")(_name_not_blank)


class ProjectUpdate(RequestModel):
    name: Annotated[ProjectName | None, Field(json_schema_extra=not_null)] = None
    description: Annotated[Description | None, Field(json_schema_extra=not_null)] = None
    status: Annotated[Status | None, Field(json_schema_extra=not_null)] = None

    _check_name = field_validator("name")(_name_not_blank)

    @field_validator("description", "status")
    @classmethod
    def _not_null(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError("may not be null")
        return value


class ProjectOut(ResponseModel):
    id: uuid.UUID
    name: str
    description: str
    status: str
    created_at: datetime
    updated_at: datetime


def get_owned_project(db: Session, owner_id: uuid.UUID, project_id: uuid.UUID) -> Project:
    """The project if owner_id owns it; 404 alike for missing and foreign projects."""
    project = db.scalar(select(Project).where(Project.id == project_id, Project.owner_id == owner_id))
    if project is None:
        raise not_found("project")
    return project


def create_project(db: Session, owner_id: uuid.UUID, values: Mapping[str, Any]) -> Project:
    project = Project(owner_id=owner_id, **values)
    db.add(project)
    db.flush()
    return project


@router.get("", response_model=Page[ProjectOut])
def list_projects(db: DbSession, user: CurrentUser, page: PageParams) -> Page[ProjectOut]:
    statement = select(Project).where(Project.owner_id == user.id)
    rows, next_cursor = keyset_page(db, statement, Project.created_at, Project.id, page.limit, page.cursor)
    return Page(items=[ProjectOut.model_validate(row) for row in rows], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=ProjectOut)
def post_project(body: ProjectCreate, db: DbSession, user: CurrentUser) -> Project:
    return create_project(db, user.id, body.model_dump())


@router.get("/{project_id}", response_model=ProjectOut)
def get_project(project_id: uuid.UUID, db: DbSession, user: CurrentUser) -> Project:
    return get_owned_project(db, user.id, project_id)


@router.patch("/{project_id}", response_model=ProjectOut)
def patch_project(project_id: uuid.UUID, body: ProjectUpdate, db: DbSession, user: CurrentUser) -> Project:
    project = get_owned_project(db, user.id, project_id)
    for name, value in body.model_dump(exclude_unset=True).items():
        setattr(project, name, value)
    db.flush()
    return project


@router.delete("/{project_id}", status_code=204, response_class=Response)
def delete_project(project_id: uuid.UUID, db: DbSession, user: CurrentUser) -> Response:
    """Delete a project; its sessions stay, outside any project."""
    db.delete(get_owned_project(db, user.id, project_id))
    db.flush()
    return Response(status_code=204)
