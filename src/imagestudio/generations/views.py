"""Generations as the API shows them: each with its inputs and outputs, loaded in a fixed number of
queries however many generations are shown."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from imagestudio.assets.service import asset_out
from imagestudio.generations.schemas import (
    GenerationError,
    GenerationInputOut,
    GenerationOut,
    GenerationParamsOut,
    GenerationProgress,
    PromptOptionsOut,
    PromptPlanOut,
)
from imagestudio.models import Asset, Generation, GenerationInput

Inputs = dict[uuid.UUID, list[GenerationInput]]
Outputs = dict[uuid.UUID, list[Asset]]


def generation_out(
    generation: Generation, inputs: Iterable[GenerationInput], outputs: Iterable[Asset]
) -> GenerationOut:
    error = None
    if generation.error_code or generation.error_message:
        error = GenerationError(code=generation.error_code or "error", message=generation.error_message or "")
    known_options = PromptOptionsOut.model_fields
    return GenerationOut(
        id=generation.id,
        session_id=generation.session_id,
        message_id=generation.message_id,
        parent_generation_id=generation.parent_generation_id,
        retried_from_id=generation.retried_from_id,
        type=generation.type,
        status=generation.status,
        provider=generation.provider,
        model=generation.model,
        served_by=generation.served_by,
        prompt=generation.prompt,
        negative_prompt=generation.negative_prompt,
        enhanced_prompt=generation.enhanced_prompt,
        enhance_prompt=generation.enhance_prompt,
        prompt_method=generation.prompt_method,
        prompt_plan=PromptPlanOut(**generation.prompt_plan) if generation.prompt_plan else None,
        prompt_options=PromptOptionsOut(
            **{name: value for name, value in (generation.prompt_options or {}).items() if name in known_options}
        ),
        aspect_ratio=generation.aspect_ratio,
        width=generation.width,
        height=generation.height,
        num_images=generation.num_images,
        params=GenerationParamsOut(
            steps=generation.steps,
            guidance=generation.guidance,
            strength=generation.strength,
            scheduler=generation.scheduler,
            seed=generation.seed,
            upscale_factor=generation.upscale_factor,
            extra=dict(generation.params or {}),
        ),
        error=error,
        cost=generation.cost,
        progress=GenerationProgress(step=generation.progress_step, total=generation.progress_total),
        attempt=generation.attempt,
        max_attempts=generation.max_attempts,
        priority=generation.priority,
        cancel_requested=generation.cancel_requested,
        created_at=generation.created_at,
        started_at=generation.started_at,
        completed_at=generation.completed_at,
        duration_ms=generation.duration_ms,
        inputs=[
            GenerationInputOut(asset_id=item.asset_id, role=item.role)
            for item in sorted(inputs, key=lambda item: (item.role, item.position))
        ],
        outputs=[asset_out(asset) for asset in sorted(outputs, key=lambda asset: asset.batch_index or 0)],
    )


def load_parts(db: Session, generation_ids: Select | Sequence[uuid.UUID]) -> tuple[Inputs, Outputs]:
    """Inputs and outputs of the generations selected by `generation_ids` (a select of ids, or a list),
    in two queries."""
    inputs: Inputs = defaultdict(list)
    outputs: Outputs = defaultdict(list)
    ids = generation_ids if isinstance(generation_ids, Select) else list(generation_ids)
    if not isinstance(ids, Select) and not ids:
        return inputs, outputs
    for row in db.scalars(select(GenerationInput).where(GenerationInput.generation_id.in_(ids))):
        inputs[row.generation_id].append(row)
    for asset in db.scalars(
        select(Asset).where(Asset.generation_id.in_(ids), Asset.kind == "output", Asset.deleted_at.is_(None))
    ):
        assert asset.generation_id is not None
        outputs[asset.generation_id].append(asset)
    return inputs, outputs


def generations_out(db: Session, generations: Sequence[Generation]) -> list[GenerationOut]:
    inputs, outputs = load_parts(db, [generation.id for generation in generations])
    return [
        generation_out(generation, inputs.get(generation.id, []), outputs.get(generation.id, []))
        for generation in generations
    ]


def one_generation_out(db: Session, generation: Generation) -> GenerationOut:
    return generations_out(db, [generation])[0]
