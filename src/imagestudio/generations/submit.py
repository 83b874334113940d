"""Turning API requests into queued generations: the user's defaults, idempotency, the prompt filter
and quotas around the engine's create_generation, and the engine's errors as API problems.

Used by POST /api/v1/generations and by chat turns; everything runs in the request's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.accounts.service import get_user_settings
from imagestudio.config import Settings
from imagestudio.generations import limits
from imagestudio.generations.errors import (
    GenerationError,
    GenerationNotFound,
    IdempotencyConflict,
    InvalidGenerationRequest,
)
from imagestudio.generations.schemas import GenerationOverrides
from imagestudio.generations.service import create_generation, request_fingerprint
from imagestudio.generations.spec import GenerationSpec
from imagestudio.kit.errors import ApiError, FieldError, not_found
from imagestudio.models import Generation, User
from imagestudio.providers.base import GenerationType
from imagestudio.providers.registry import ProviderRegistry

IDEMPOTENCY_KEY_MAX = 200
# Spec fields that the API nests under `params`.
_PARAM_FIELDS = frozenset({"steps", "guidance", "strength", "scheduler", "seed", "upscale_factor"})
_TYPES_WITH_STRENGTH = frozenset({GenerationType.img2img, GenerationType.inpaint, GenerationType.variation})


@contextmanager
def engine_errors(field_names: dict[str, str] | None = None) -> Iterator[None]:
    """Answer the engine's errors as problems with their stable codes; field_names renames the engine's
    field names to the request's (e.g. type -> mode for chat turns)."""
    try:
        yield
    except InvalidGenerationRequest as error:
        name = error.field
        name = (field_names or {}).get(name, f"params.{name}" if name in _PARAM_FIELDS else name)
        raise ApiError(
            422,
            error.code,
            f"{name}: {error.message}",
            [FieldError(name, _sentence(error.message))],
        ) from None
    except GenerationNotFound:
        raise not_found("generation") from None
    except IdempotencyConflict as error:
        raise ApiError(
            409,
            error.code,
            "This Idempotency-Key was already used for a different request; use a new key for a new request.",
        ) from None
    except GenerationError as error:
        raise ApiError(error.status_code, error.code, _sentence(error.message)) from None


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX or not key.isprintable():
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"The Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_MAX} printable characters.",
        )
    return key


# --- defaults ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Defaults:
    """What the user's settings say to use when a request leaves something out."""

    provider: str | None = None
    model: str | None = None
    params: dict = field(default_factory=dict)
    enhance_prompt: bool = False


def user_defaults(db: Session, user_id: uuid.UUID) -> Defaults:
    row = get_user_settings(db, user_id)
    return Defaults(
        provider=row.default_provider,
        model=row.default_model,
        params=dict(row.default_params or {}),
        enhance_prompt=bool(row.enhance_prompt),
    )


def _choose_provider(
    overrides: GenerationOverrides, defaults: Defaults, registry: ProviderRegistry
) -> tuple[str | None, str | None]:
    """(provider, model) for a request: what it names; else the user's default provider (and model)
    when that provider can take work; else None, which the engine turns into the registry default."""
    provider, model = overrides.provider, overrides.model
    preferred = defaults.provider
    if provider is None and preferred is not None and registry.problem(preferred) is None:
        provider = preferred
    if (
        model is None
        and defaults.model
        and provider is not None
        and provider == preferred
        and registry.problem(provider) is None
        # A remembered model that the provider no longer lists is ignored rather than refused.
        and registry.capabilities(provider).model(defaults.model) is not None
    ):
        model = defaults.model
    return provider, model


def build_spec(
    overrides: GenerationOverrides,
    *,
    type: GenerationType,
    prompt: str,
    defaults: Defaults,
    registry: ProviderRegistry,
    source_asset_id: uuid.UUID | None = None,
    mask_asset_id: uuid.UUID | None = None,
    reference_asset_ids: list[uuid.UUID] | None = None,
    parent_generation_id: uuid.UUID | None = None,
    priority: int = 0,
) -> GenerationSpec:
    """A GenerationSpec from a request body, with the user's defaults filling what it leaves out."""
    provider, model = _choose_provider(overrides, defaults, registry)
    params = overrides.params
    default_params = defaults.params

    def param(name: str):
        value = getattr(params, name)
        if value is None and (name != "strength" or type in _TYPES_WITH_STRENGTH):
            value = default_params.get(name)
        return value

    values = dict(
        type=type,
        prompt=prompt,
        negative_prompt=overrides.negative_prompt,
        provider=provider,
        model=model,
        num_images=overrides.num_images,
        width=overrides.width,
        height=overrides.height,
        aspect_ratio=overrides.aspect_ratio,
        steps=param("steps"),
        guidance=param("guidance"),
        strength=param("strength"),
        scheduler=param("scheduler"),
        seed=param("seed"),
        upscale_factor=params.upscale_factor,
        prompt_options=overrides.prompt_options.model_dump(),
        enhance_prompt=defaults.enhance_prompt if overrides.enhance_prompt is None else overrides.enhance_prompt,
        source_asset_id=source_asset_id,
        mask_asset_id=mask_asset_id,
        reference_asset_ids=list(reference_asset_ids or []),
        parent_generation_id=parent_generation_id,
        priority=priority,
        params=dict(params.extra),
    )
    try:
        return GenerationSpec(**values)
    except ValidationError as error:
        fields = []
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else "body"
            name = f"params.{name}" if name in _PARAM_FIELDS else name
            fields.append(FieldError(name, str(item.get("msg", "is invalid"))))
        raise ApiError(422, "validation_failed", "The request has invalid fields.", fields) from None


# --- submitting --------------------------------------------------------------------------------


def replayed(
    db: Session,
    owner_id: uuid.UUID,
    key: str | None,
    spec: GenerationSpec,
    session_id: uuid.UUID | None,
    message_id: uuid.UUID | None = None,
) -> Generation | None:
    """The generation an earlier request with this Idempotency-Key created, if the request is the same;
    409 when the key was used for a different one."""
    if key is None:
        return None
    existing = db.scalars(
        select(Generation).where(Generation.owner_id == owner_id, Generation.idempotency_key == key)
    ).first()
    if existing is None:
        return None
    if existing.request_fingerprint != request_fingerprint(spec, session_id, message_id):
        with engine_errors():
            raise IdempotencyConflict(key, existing.id)
    return existing


def prompt_texts(spec: GenerationSpec, prompt_field: str = "prompt") -> dict[str, str | None]:
    """What the prompt filter reads: the prompt and every prompt option (folded into the prompt)."""
    texts: dict[str, str | None] = {prompt_field: spec.prompt}
    for name, value in spec.prompt_options.model_dump().items():
        if isinstance(value, str):
            texts[f"prompt_options.{name}"] = value
    return texts


def submit(
    db: Session,
    *,
    user: User,
    spec: GenerationSpec,
    registry: ProviderRegistry,
    settings: Settings,
    session_id: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    field_names: dict[str, str] | None = None,
    counted: bool = False,
) -> Generation:
    """Queue a generation for user: prompt filter, quotas (unless `counted` already), then the engine.

    Raises ApiError: 422 for what the provider cannot serve (naming the field and the limit) and for
    refused prompts, 429 over a quota, 409 for an Idempotency-Key reused with another request."""
    limits.check_prompt(settings, prompt_texts(spec, (field_names or {}).get("prompt", "prompt")))
    if not counted:
        limits.consume(db, user, settings, spec.num_images)
    with engine_errors(field_names):
        return create_generation(
            db,
            owner_id=user.id,
            spec=spec,
            registry=registry,
            settings=settings,
            session_id=session_id,
            message_id=message_id,
            idempotency_key=idempotency_key,
        )
