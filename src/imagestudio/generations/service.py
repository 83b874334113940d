"""Creating, canceling, retrying and deleting generations. Functions flush only; the caller commits.

Every change goes through the domain rules (models/rules.py) in the same transaction, and every
status change writes its event, so the session, the assistant message and live streams all agree.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from imagestudio import notify
from imagestudio.accounts import provider_keys
from imagestudio.assets.service import delete_objects_after_commit
from imagestudio.config import Settings
from imagestudio.generations import billing
from imagestudio.generations.enqueue import announce_queued, queue_columns
from imagestudio.generations.errors import (
    GenerationNotFound,
    IdempotencyConflict,
    InvalidGenerationRequest,
    InvalidGenerationState,
)
from imagestudio.generations.events import GENERATIONS, GenerationRef, append_event, event_rows, insert_events
from imagestudio.generations.spec import (
    TYPES_TAKING_REFERENCES,
    GenerationSpec,
    compose_prompt,
    resolve_size,
)
from imagestudio.models import (
    Asset,
    ChatSession,
    EventType,
    Generation,
    GenerationInput,
    GenerationType,
    InputPurpose,
    Message,
    PromptMethod,
    RunStatus,
    limits,
    rules,
)
from imagestudio.models.types import utcnow
from imagestudio.providers.base import (
    ModelInfo,
    ProviderCapabilities,
    UnsupportedRequest,
    check_request,
    model_for_type,
)
from imagestudio.providers.registry import (
    ProviderRegistry,
    ProviderUnavailable,
    UnknownProvider,
    stored_providers,
)
from imagestudio.storage.base import Storage
from imagestudio.storage.keys import stored_objects


def request_fingerprint(
    spec: GenerationSpec,
    session_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    retried_from_id: uuid.UUID | None = None,
) -> str:
    """What makes two requests with one Idempotency-Key the same request. A retry is told apart by
    what it retries: its message moves to the rerun, so it is left out."""
    body = {
        "spec": spec.model_dump(mode="json"),
        "session_id": str(session_id) if session_id else None,
        "message_id": str(message_id) if message_id and not retried_from_id else None,
        "retried_from_id": str(retried_from_id) if retried_from_id else None,
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def replay_of(db: Session, owner_id: uuid.UUID, key: str | None, fingerprint: str | None) -> Generation | None:
    """The generation an earlier request with this Idempotency-Key created (None for a new key);
    IdempotencyConflict when that request was a different one. The one idempotency lookup."""
    if key is None:
        return None
    existing = db.scalars(
        select(Generation).where(Generation.owner_id == owner_id, Generation.idempotency_key == key)
    ).first()
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise IdempotencyConflict(key, existing.id)
    return existing


# Spec fields a new row takes as they are.
_COPIED_TO_ROW = frozenset({"num_images", "steps", "guidance", "strength", "scheduler", "priority"})


@dataclass(frozen=True)
class _Serving:
    """Which provider and model take a request, and what they can do."""

    provider_name: str
    caps: ProviderCapabilities
    model: str
    model_info: ModelInfo | None


def create_generation(
    db: Session,
    *,
    owner_id: uuid.UUID,
    spec: GenerationSpec,
    registry: ProviderRegistry,
    settings: Settings,
    session_id: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    retried_from_id: uuid.UUID | None = None,
) -> Generation:
    """Validate a request against its provider, queue it and record its 'queued' event.

    Raises InvalidGenerationRequest (422, with the field at fault) for anything the provider cannot
    serve. With an idempotency key the row's unique key decides: a second insert of the same request
    returns the first generation, of a different one raises IdempotencyConflict. Callers that must not
    charge a replay look it up first with replay_of."""
    serving = _serving(db, registry, spec, owner_id)
    _check_owned_context(db, owner_id, session_id, message_id, spec.parent_generation_id)
    inputs = _load_inputs(db, owner_id, spec)
    width, height, aspect_ratio = _checked_size(spec, serving, inputs)
    fingerprint = request_fingerprint(spec, session_id, message_id, retried_from_id) if idempotency_key else None
    now = utcnow()
    # Decided now unless a language model is to write it: then the worker asks it before rendering.
    composed = None if spec.enhance_prompt else compose_prompt(spec.prompt, spec.prompt_options)
    method = None if spec.enhance_prompt else (PromptMethod.template if composed else PromptMethod.none).value
    generation = Generation(
        owner_id=owner_id,
        session_id=session_id,
        message_id=message_id,
        parent_generation_id=spec.parent_generation_id,
        retried_from_id=retried_from_id,
        type=str(spec.type),
        status=RunStatus.queued.value,
        provider=serving.provider_name,
        model=serving.model,
        prompt=spec.prompt,
        negative_prompt=spec.negative_prompt or None,
        enhanced_prompt=composed,
        enhance_prompt=spec.enhance_prompt,
        prompt_method=method,
        prompt_options=spec.prompt_options.model_dump(exclude_defaults=True),
        aspect_ratio=aspect_ratio,
        width=width,
        height=height,
        **spec.model_dump(include=_COPIED_TO_ROW),
        seed=_seed(spec, serving.caps),
        upscale_factor=(spec.upscale_factor or serving.caps.upscale_factors[0]) if spec.type == "upscale" else None,
        params=dict(spec.params),
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        **queue_columns(settings, now),
    )
    existing = _insert(db, generation)
    if existing is not None:
        return existing
    _record_queued(db, generation, inputs)
    return generation


def _serving(db: Session, registry: ProviderRegistry, spec: GenerationSpec, owner_id: uuid.UUID) -> _Serving:
    provider_name = spec.provider or registry.default_name
    # An unconfigured provider is accepted only when a ready fallback will serve in its place, or
    # the owner brings their own key for it; the request is checked against whichever provider will
    # take it first, with the models the providers table lists (so a provider only a worker
    # registers is accepted too).
    own_keys = provider_keys.own_key_providers(db, owner_id)
    try:
        serving, caps = registry.submit_target(provider_name, stored_providers(db), also_ready=own_keys)
    except (UnknownProvider, ProviderUnavailable) as error:
        raise InvalidGenerationRequest("provider", str(error)) from None
    billing.admit_paid(db, registry, owner_id, serving, own_key=serving in own_keys)
    requested_model = spec.model if serving == provider_name else None
    model_info = caps.model(requested_model) if requested_model else model_for_type(caps, spec.type)
    model = requested_model or (model_info.id if model_info else caps.default_model)
    return _Serving(provider_name, caps, model, model_info)


def _checked_size(
    spec: GenerationSpec, serving: _Serving, inputs: dict[InputPurpose, list[Asset]]
) -> tuple[int, int, str | None]:
    """The final size, after checking the whole request against the serving provider."""
    source = inputs.get(InputPurpose.init)
    source_size = (source[0].width, source[0].height) if source else None
    try:
        width, height, aspect_ratio = resolve_size(spec, serving.caps, serving.model_info, source_size)
        check_request(
            serving.caps,
            type=spec.type,
            model=serving.model,
            num_images=spec.num_images,
            width=width,
            height=height,
            has_init=source is not None,
            has_mask=InputPurpose.mask in inputs,
            upscale_factor=spec.upscale_factor,
            guidance=spec.guidance,
            scheduler=spec.scheduler,
            extra=spec.params,
            source_size=source_size,
        )
    except UnsupportedRequest as error:
        raise InvalidGenerationRequest(error.field, error.message) from None
    if spec.reference_asset_ids and spec.type not in TYPES_TAKING_REFERENCES:
        raise InvalidGenerationRequest("reference_asset_ids", f"{spec.type} does not take reference images")
    return width, height, aspect_ratio


def _seed(spec: GenerationSpec, caps: ProviderCapabilities) -> int | None:
    """The request's seed, else one drawn for providers that honour seeds, so a retry reproduces it."""
    if spec.seed is None and caps.honours_seed and spec.type != GenerationType.upscale:
        return secrets.randbelow(limits.SEED_DRAW_BOUND)
    return spec.seed


def _insert(db: Session, generation: Generation) -> Generation | None:
    """Add the row; None when added, or the generation a concurrent request with the same
    idempotency key created first."""
    if generation.idempotency_key is None:
        db.add(generation)
        db.flush()
        return None
    try:
        with db.begin_nested():
            db.add(generation)
            db.flush()
    except IntegrityError:
        existing = replay_of(db, generation.owner_id, generation.idempotency_key, generation.request_fingerprint)
        if existing is None:
            raise
        return existing
    return None


def _record_queued(db: Session, generation: Generation, inputs: dict[InputPurpose, list[Asset]]) -> None:
    """The rows that go with a new generation: its inputs, the session's counters, its event."""
    input_rows = [
        GenerationInput(generation_id=generation.id, asset_id=asset.id, role=str(role), position=position)
        for role, assets in inputs.items()
        for position, asset in enumerate(assets)
    ]
    if input_rows:
        db.add_all(input_rows)
        db.flush()
    rules.generation_added(db, generation)
    if generation.message_id is not None:
        rules.generation_status_changed(db, generation.id, RunStatus.queued.value)
    announce_queued(db, generation)


def _check_owned_context(
    db: Session,
    owner_id: uuid.UUID,
    session_id: uuid.UUID | None,
    message_id: uuid.UUID | None,
    parent_id: uuid.UUID | None,
) -> None:
    if session_id is not None:
        owner = db.scalar(select(ChatSession.owner_id).where(ChatSession.id == session_id))
        if owner != owner_id:
            raise InvalidGenerationRequest("session_id", "no such session")
    if message_id is not None:
        message_session = db.scalar(select(Message.session_id).where(Message.id == message_id))
        if message_session is None or message_session != session_id:
            raise InvalidGenerationRequest("message_id", "the message does not belong to this session")
    if parent_id is not None:
        owner = db.scalar(select(Generation.owner_id).where(Generation.id == parent_id))
        if owner != owner_id:
            raise InvalidGenerationRequest("parent_generation_id", "no such generation")


def _load_inputs(db: Session, owner_id: uuid.UUID, spec: GenerationSpec) -> dict[InputPurpose, list[Asset]]:
    wanted: list[tuple[InputPurpose, str, uuid.UUID]] = []
    if spec.source_asset_id:
        wanted.append((InputPurpose.init, "source_asset_id", spec.source_asset_id))
    if spec.mask_asset_id:
        wanted.append((InputPurpose.mask, "mask_asset_id", spec.mask_asset_id))
    wanted.extend((InputPurpose.reference, "reference_asset_ids", ref) for ref in spec.reference_asset_ids)
    if not wanted:
        return {}
    ids = {asset_id for _, _, asset_id in wanted}
    found = {
        asset.id: asset
        for asset in db.scalars(
            select(Asset).where(Asset.id.in_(ids), Asset.owner_id == owner_id, Asset.deleted_at.is_(None))
        )
    }
    inputs: dict[InputPurpose, list[Asset]] = {}
    for role, field, asset_id in wanted:
        asset = found.get(asset_id)
        if asset is None:
            raise InvalidGenerationRequest(field, f"no such image: {asset_id}")
        inputs.setdefault(role, []).append(asset)
    return inputs


def get_generation(db: Session, generation_id: uuid.UUID, owner_id: uuid.UUID) -> Generation:
    generation = db.get(Generation, generation_id, populate_existing=True)
    if generation is None or generation.owner_id != owner_id:
        raise GenerationNotFound(generation_id)
    return generation


def request_cancel(db: Session, *, generation_id: uuid.UUID, owner_id: uuid.UUID) -> Generation:
    """Cancel: a queued generation at once; a running one cooperatively (its worker sees the request at
    its next progress step or heartbeat, discards partial outputs and marks it canceled). A finished
    generation is returned unchanged."""
    generation = get_generation(db, generation_id, owner_id)
    now = utcnow()
    if generation.status == RunStatus.queued:
        row = db.execute(
            update(GENERATIONS)
            .where(GENERATIONS.c.id == generation_id, GENERATIONS.c.status == RunStatus.queued.value)
            .values(
                status=RunStatus.canceled.value,
                cancel_requested=True,
                completed_at=now,
                updated_at=now,
                event_seq=GENERATIONS.c.event_seq + 1,
                # An earlier attempt that crashed may have stored objects; the sweeper removes them.
                cleanup_pending=GENERATIONS.c.attempt > 0,
            )
            .returning(GENERATIONS.c.event_seq, GENERATIONS.c.attempt)
        ).first()
        if row is not None:
            ref = GenerationRef(generation_id, generation.owner_id, generation.session_id)
            rows = event_rows(ref, attempt=row.attempt, last_sequence=row.event_seq, events=[(EventType.canceled, {})])
            rules.generation_status_changed(db, generation_id, RunStatus.canceled.value)
            insert_events(db, rows)
            return get_generation(db, generation_id, owner_id)
        generation = get_generation(db, generation_id, owner_id)  # claimed meanwhile: cancel it running
    if generation.status == RunStatus.processing and not generation.cancel_requested:
        recorded = append_event(
            db,
            generation_id,
            EventType.cancel_requested,
            where=[GENERATIONS.c.status == RunStatus.processing.value, GENERATIONS.c.cancel_requested.is_(False)],
        )
        if recorded is not None:
            db.execute(
                update(GENERATIONS)
                .where(GENERATIONS.c.id == generation_id)
                .values(cancel_requested=True, updated_at=now)
            )
            notify.announce_cancel(db, generation_id)
        return get_generation(db, generation_id, owner_id)
    return generation


def retry_generation(
    db: Session,
    *,
    generation_id: uuid.UUID,
    owner_id: uuid.UUID,
    registry: ProviderRegistry,
    settings: Settings,
    idempotency_key: str | None = None,
) -> Generation:
    """A new generation with the same request (and seed), retried_from_id pointing at the failed or
    canceled one. The chat message, if any, moves to the new generation so it mirrors the rerun."""
    original = get_generation(db, generation_id, owner_id)
    check_retriable(original)
    spec = spec_of(db, original)
    message_id = original.message_id
    if message_id is not None:
        original.message_id = None
        db.flush()
    return create_generation(
        db,
        owner_id=owner_id,
        spec=spec,
        registry=registry,
        settings=settings,
        session_id=original.session_id,
        message_id=message_id,
        idempotency_key=idempotency_key,
        retried_from_id=original.id,
    )


def check_retriable(generation: Generation) -> None:
    if generation.status not in (RunStatus.failed, RunStatus.canceled):
        raise InvalidGenerationState(generation.id, generation.status, "retry")


def spec_of(db: Session, generation: Generation) -> GenerationSpec:
    """The request a generation was made from (inputs included), to run it again."""
    if generation.type == GenerationType.caption:
        raise InvalidGenerationRequest("type", "a caption is not retried here; ask its asset for a new caption")
    if generation.type == GenerationType.ui:
        raise InvalidGenerationRequest("type", "UI code is retried at /api/v1/ui-generations/{id}/retry")
    if generation.type == GenerationType.reply:
        raise InvalidGenerationRequest("type", "a reply is not retried here; ask the question again in its session")
    inputs = db.execute(
        select(GenerationInput.role, GenerationInput.asset_id)
        .where(GenerationInput.generation_id == generation.id)
        .order_by(GenerationInput.role, GenerationInput.position)
    ).all()
    by_role: dict[str, list[uuid.UUID]] = {}
    for role, asset_id in inputs:
        by_role.setdefault(role, []).append(asset_id)
    values = {name: getattr(generation, name) for name in _STORED_AS_IS}
    if generation.type == GenerationType.upscale:
        # An upscale's size follows its source (and may pass the request limits).
        values["upscale_factor"] = generation.upscale_factor
    else:
        values.update(width=generation.width, height=generation.height, aspect_ratio=generation.aspect_ratio)
    values.update(
        source_asset_id=next(iter(by_role.get(InputPurpose.init.value, [])), None),
        mask_asset_id=next(iter(by_role.get(InputPurpose.mask.value, [])), None),
        reference_asset_ids=by_role.get(InputPurpose.reference.value, []),
    )
    try:
        return GenerationSpec(**values)
    except ValidationError as error:
        # A row from before today's limits: say which value no longer passes.
        field = ".".join(str(part) for part in error.errors()[0]["loc"]) or "request"
        raise InvalidGenerationRequest(field, f"this generation's {field} is outside today's limits") from None


# GenerationSpec fields a generation's row keeps under the same name.
_STORED_AS_IS = (
    "type",
    "prompt",
    "negative_prompt",
    "provider",
    "model",
    "num_images",
    "steps",
    "guidance",
    "strength",
    "scheduler",
    "seed",
    "prompt_options",
    "enhance_prompt",
    "parent_generation_id",
    "priority",
    "params",
)


def delete_generation(db: Session, *, generation_id: uuid.UUID, owner_id: uuid.UUID, storage: Storage) -> None:
    """Delete a finished generation (succeeded, failed or canceled), its chat turn, its events and
    every object its attempts stored; the objects go once the transaction commits.

    Generations made from it stay: their parent link is cleared (each starts a line of its own),
    and the output they read from it is gone with the rest."""
    generation = get_generation(db, generation_id, owner_id)
    if generation.status not in (RunStatus.failed, RunStatus.canceled, RunStatus.succeeded):
        raise InvalidGenerationState(generation_id, generation.status, "delete")
    outputs = list(db.scalars(select(Asset).where(Asset.generation_id == generation_id)))
    for asset in outputs:
        if asset.deleted_at is None:
            rules.output_removed(db, asset)
    keys = set(stored_objects(storage, [generation_id]))
    keys.update(key for asset in outputs for key in (asset.storage_key, asset.thumbnail_key) if key)
    delete_objects_after_commit(db, storage, keys)
    message_id = generation.message_id
    db.delete(generation)
    db.flush()
    if message_id is not None:
        _delete_turn(db, message_id)


def _delete_turn(db: Session, assistant_message_id: uuid.UUID) -> None:
    """The assistant message, and the user message that asked for it unless another answer follows it."""
    assistant = db.get(Message, assistant_message_id)
    if assistant is None:
        return
    prompt = db.get(Message, assistant.parent_message_id) if assistant.parent_message_id else None
    rules.message_removed(db, assistant)
    db.delete(assistant)
    db.flush()
    if prompt is None or prompt.role != "user":
        return
    answered = db.scalar(select(Message.id).where(Message.parent_message_id == prompt.id).limit(1))
    if answered is None:
        rules.message_removed(db, prompt)
        db.delete(prompt)
        db.flush()
