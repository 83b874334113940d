"""Generations as the API shows them: each with its inputs and outputs, loaded in a fixed number of
queries however many generations are shown."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from imagestudio.assets.service import asset_out
from imagestudio.generations.billing import money
from imagestudio.generations.schemas import (
    GenerationError,
    GenerationInputOut,
    GenerationOut,
    GenerationParamsOut,
    GenerationProgress,
    PromptOptionsOut,
    PromptPlanOut,
)
from imagestudio.generations.spec import SamplingParams
from imagestudio.models import Asset, Generation, GenerationInput

# Failures that recur on a retry: the provider refused the content or the request, or an input is gone.
PERMANENT_FAILURES = frozenset({"content_rejected", "provider_failed", "invalid_request", "input_unavailable"})

Inputs = dict[uuid.UUID, list[GenerationInput]]
Outputs = dict[uuid.UUID, list[Asset]]


def generation_out(
    generation: Generation, inputs: Iterable[GenerationInput], outputs: Iterable[Asset]
) -> GenerationOut:
    error = None
    if generation.error_code or generation.error_message:
        code = generation.error_code or "error"
        error = GenerationError(
            code=code, message=generation.error_message or "", retriable=code not in PERMANENT_FAILURES
        )
    known_options = PromptOptionsOut.model_fields
    return GenerationOut(
        **{name: getattr(generation, name) for name in GenerationOut.model_fields if name not in _COMPOSED},
        prompt_options=PromptOptionsOut(
            **{name: value for name, value in (generation.prompt_options or {}).items() if name in known_options}
        ),
        params=GenerationParamsOut(
            **{name: getattr(generation, name) for name in SamplingParams.model_fields},
            extra=dict(generation.params or {}),
        ),
        prompt_plan=PromptPlanOut(**generation.prompt_plan) if generation.prompt_plan else None,
        error=error,
        cost=money(generation.cost),
        progress=GenerationProgress(step=generation.progress_step, total=generation.progress_total),
        inputs=[
            GenerationInputOut(asset_id=item.asset_id, role=item.role)
            for item in sorted(inputs, key=lambda item: (item.role, item.position))
        ],
        outputs=[asset_out(asset) for asset in sorted(outputs, key=lambda asset: asset.batch_index or 0)],
    )


# GenerationOut fields built here; every other one is the row's column of the same name.
_COMPOSED = frozenset(
    {"prompt_options", "params", "prompt_plan", "error", "cost", "progress", "inputs", "outputs"}
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
