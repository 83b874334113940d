"""A UI generation as the API answers it."""

from __future__ import annotations

from imagestudio.config import Settings
from imagestudio.generations.schemas import GenerationError
from imagestudio.uicode.preview import preview_link
from imagestudio.uicode.schemas import UiGenerationOut
from imagestudio.uicode.service import UiView


def ui_out(view: UiView, settings: Settings, code: str | None = None) -> UiGenerationOut:
    row, job = view.row, view.job
    error = None
    if job.error_code or job.error_message:
        error = GenerationError(code=job.error_code or "error", message=job.error_message or "")
    link = preview_link(settings, row.id) if row.storage_key is not None else None
    return UiGenerationOut(
        id=row.id,
        session_id=row.session_id,
        generation_id=job.id,
        message_id=row.message_id,
        assistant_message_id=job.message_id,
        parent_id=row.parent_id,
        retried_from_generation_id=job.retried_from_id,
        source_asset_id=row.source_asset_id,
        status=job.status,
        error=error,
        prompt=row.prompt,
        title=row.title,
        provider=job.served_by or job.provider,
        model=job.model,
        by_ai=row.by_ai,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        code_bytes=row.code_bytes,
        code_sha256=row.code_sha256,
        removed_references=row.removed_references,
        code=code,
        preview_url=link.url if link else None,
        preview_expires_at=link.expires_at if link else None,
        created_at=row.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        duration_ms=job.duration_ms,
    )
