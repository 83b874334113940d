"""Downloads of a person's own work as a zip: a session, a project, or everything."""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from imagestudio.accounts.deps import CurrentUser, DbSession
from imagestudio.container import ContainerDep
from imagestudio.kit.errors import not_found
from imagestudio.models import ChatSession, Project
from imagestudio.operations.export import Scope, write_export

router = APIRouter(tags=["export"])

_ZIP = {200: {"content": {"application/zip": {}}, "description": "A zip of images and JSON documents."}}
_SPOOL_BYTES = 16 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    try:
        file.seek(0)
        while chunk := file.read(1024 * 1024):
            yield chunk
    finally:
        file.close()


async def _zip_response(db: DbSession, container: ContainerDep, scope: Scope, name: str) -> StreamingResponse:
    # Closed by _chunks once the response is sent (or by the error path below).
    spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
    try:
        await run_in_threadpool(write_export, db, container.storage, scope, spool)
    except BaseException:
        spool.close()
        raise
    filename = (_UNSAFE.sub("-", name).strip(".-_")[:80] or "imagestudio") + ".zip"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"}
    return StreamingResponse(_chunks(spool), media_type="application/zip", headers=headers)


@router.get("/sessions/{session_id}/export", response_class=StreamingResponse, responses=_ZIP)
async def export_session(
    session_id: uuid.UUID, db: DbSession, user: CurrentUser, container: ContainerDep
) -> StreamingResponse:
    """The session's images (originals) and a JSON document per generation (prompt, options, seed,
    provider, model, parent, timings, captions)."""
    chat = await run_in_threadpool(db.get, ChatSession, session_id)
    if chat is None or chat.owner_id != user.id:
        raise not_found("session")
    return await _zip_response(db, container, Scope(owner_id=user.id, session_id=session_id), chat.title)


@router.get("/projects/{project_id}/export", response_class=StreamingResponse, responses=_ZIP)
async def export_project(
    project_id: uuid.UUID, db: DbSession, user: CurrentUser, container: ContainerDep
) -> StreamingResponse:
    """Every session of the project, as in a session export."""
    project = await run_in_threadpool(db.get, Project, project_id)
    if project is None or project.owner_id != user.id:
        raise not_found("project")
    return await _zip_response(db, container, Scope(owner_id=user.id, project_id=project_id), project.name)


@router.get("/me/export", response_class=StreamingResponse, responses=_ZIP)
async def export_everything(db: DbSession, user: CurrentUser, container: ContainerDep) -> StreamingResponse:
    """Everything you made: every session and every generation outside one."""
    return await _zip_response(db, container, Scope(owner_id=user.id), "imagestudio-export")
