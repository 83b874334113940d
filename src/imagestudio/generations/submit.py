"""The entries of the operations that queue a generation, around the engine's create_generation:
the user's defaults, idempotency, the prompt filter and quotas, and the engine's errors as API problems.

`create` serves POST /api/v1/generations and `retry` POST /api/v1/generations/{id}/retry; a chat turn
(sessions/chat.py) uses build_spec, admit and engine_errors. Each runs idempotency, the prompt filter
and the quotas once, in the request's transaction.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from imagestudio.accounts.service import get_user_settings
from imagestudio.config import Settings
from imagestudio.generations import limits, service
from imagestudio.generations.errors import (
    GenerationError,
    GenerationNotFound,
    IdempotencyConflict,
    InvalidGenerationRequest,
)
from imagestudio.generations.schemas import GenerationCreate, GenerationOverrides
from imagestudio.generations.spec import GenerationSpec, SamplingParams
from imagestudio.kit.errors import ApiError, FieldError, not_found
from imagestudio.models import ChatSession, Generation, Project, User
from imagestudio.models.limits import IDEMPOTENCY_KEY_MAX_LENGTH
from imagestudio.providers.base import GenerationType
from imagestudio.providers.registry import ProviderRegistry

# Spec fields that the API nests under `params`.
_PARAM_FIELDS = frozenset(SamplingParams.model_fields)
# Override fields the spec takes as they are.
_OVERRIDES_KEPT = frozenset({"negative_prompt", "num_images", "width", "height", "aspect_ratio", "prompt_options"})
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
        raise invalid_request(name, error.message) from None
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


def invalid_request(field_name: str, message: str) -> ApiError:
    """422 invalid_generation_request naming the field: the same answer on every path."""
    return ApiError(
        422, InvalidGenerationRequest.code, f"{field_name}: {message}", [FieldError(field_name, _sentence(message))]
    )


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def check_idempotency_key(key: str | None) -> str | None:
    if key is None:
        return None
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH or not key.isprintable():
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"The Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable characters.",
        )
    return key


# --- defaults ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Defaults:
    """What to use when a request leaves something out: the user's settings, and over them the
    settings of the project the request's session belongs to."""

    provider: str | None = None
    model: str | None = None
    params: dict = field(default_factory=dict)
    enhance_prompt: bool = False
    # A text-to-image request that names no size takes these (a project's).
    width: int | None = None
    height: int | None = None
    aspect_ratio: str | None = None
    # Prompt options a request leaves unset (a project's style, lighting, ...).
    prompt_options: dict = field(default_factory=dict)

    def under_project(self, settings: Mapping[str, Any]) -> Defaults:
        """These defaults with a project's settings winning over them."""
        provider, model = self.provider, self.model
        if settings.get("provider"):
            provider = settings["provider"]
            model = settings.get("model") or (self.model if provider == self.provider else None)
        return dataclasses.replace(
            self,
            provider=provider,
            model=model,
            params={**self.params, **settings.get("params", {})},
            width=settings.get("width"),
            height=settings.get("height"),
            aspect_ratio=settings.get("aspect_ratio"),
            prompt_options=dict(settings.get("prompt_options", {})),
        )


def user_defaults(db: Session, user_id: uuid.UUID) -> Defaults:
    row = get_user_settings(db, user_id)
    return Defaults(
        provider=row.default_provider,
        model=row.default_model,
        params=dict(row.default_params or {}),
        enhance_prompt=bool(row.enhance_prompt),
    )


def request_defaults(db: Session, user_id: uuid.UUID, session_id: uuid.UUID | None) -> Defaults:
    """The user's defaults, under those of the project of session_id (when the user owns both)."""
    defaults = user_defaults(db, user_id)
    if session_id is None:
        return defaults
    project_settings = db.scalar(
        select(Project.settings)
        .join(ChatSession, ChatSession.project_id == Project.id)
        .where(ChatSession.id == session_id, ChatSession.owner_id == user_id)
    )
    return defaults.under_project(project_settings) if project_settings else defaults


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
        if value is None and name != "upscale_factor" and (name != "strength" or type in _TYPES_WITH_STRENGTH):
            value = default_params.get(name)
        return value

    values = {
        **overrides.model_dump(include=_OVERRIDES_KEPT),
        **_defaulted_shape(overrides, defaults, type),
        **{name: param(name) for name in SamplingParams.model_fields},
        "type": type,
        "prompt": prompt,
        "provider": provider,
        "model": model,
        "source_asset_id": source_asset_id,
        "mask_asset_id": mask_asset_id,
        "reference_asset_ids": list(reference_asset_ids or []),
        "parent_generation_id": parent_generation_id,
        "priority": priority,
        "params": dict(params.extra),
        "enhance_prompt": defaults.enhance_prompt if overrides.enhance_prompt is None else overrides.enhance_prompt,
    }
    try:
        return GenerationSpec(**values)
    except ValidationError as error:
        fields = []
        for item in error.errors():
            name = str(item["loc"][0]) if item["loc"] else "body"
            name = f"params.{name}" if name in _PARAM_FIELDS else name
            fields.append(FieldError(name, str(item.get("msg", "is invalid"))))
        raise ApiError(422, "validation_failed", "The request has invalid fields.", fields) from None


def _defaulted_shape(overrides: GenerationOverrides, defaults: Defaults, type: GenerationType) -> dict[str, Any]:
    """Size and prompt options: the request's, with the defaults filling what it leaves out. A size
    is one choice (width, height or aspect ratio), so a request naming any part of it keeps its own."""
    given = overrides.prompt_options.model_dump(exclude_defaults=True)
    values: dict[str, Any] = {"prompt_options": {**defaults.prompt_options, **given}}
    sized = any(getattr(overrides, name) is not None for name in ("width", "height", "aspect_ratio"))
    if type == GenerationType.text2img and not sized:
        values.update(width=defaults.width, height=defaults.height, aspect_ratio=defaults.aspect_ratio)
    return values


# --- the entries ------------------------------------------------------------------------------


def prompt_texts(spec: GenerationSpec, prompt_field: str = "prompt") -> dict[str, str | None]:
    """What the prompt filter reads: the prompt and every prompt option (folded into the prompt)."""
    texts: dict[str, str | None] = {prompt_field: spec.prompt}
    for name, value in spec.prompt_options.model_dump().items():
        if isinstance(value, str):
            texts[f"prompt_options.{name}"] = value
    return texts


def admit(db: Session, user: User, settings: Settings, spec: GenerationSpec, prompt_field: str = "prompt") -> None:
    """The prompt filter (422 content_rejected) and the quotas (429), once per new generation.

    Runs before the operation writes anything (then every request takes its locks in the same order)."""
    limits.check_prompt(settings, prompt_texts(spec, prompt_field))
    limits.consume(db, user, settings, spec.num_images)


def create(
    db: Session,
    *,
    user: User,
    body: GenerationCreate,
    registry: ProviderRegistry,
    settings: Settings,
    idempotency_key: str | None = None,
) -> tuple[Generation, bool]:
    """Queue the generation a request body asks for; (generation, True) for a replay of an earlier
    request with the same Idempotency-Key, which is neither filtered nor counted again.

    Raises ApiError: 422 for what the provider cannot serve (naming the field and the limit) and for
    refused prompts, 429 over a quota, 409 for an Idempotency-Key reused with another request."""
    spec = build_spec(
        body,
        type=body.type,
        prompt=body.prompt,
        defaults=request_defaults(db, user.id, body.session_id),
        registry=registry,
        source_asset_id=body.source_asset_id,
        mask_asset_id=body.mask_asset_id,
        reference_asset_ids=body.reference_asset_ids,
        parent_generation_id=body.parent_generation_id,
        priority=body.priority,
    )
    return queue(
        db,
        user=user,
        spec=spec,
        registry=registry,
        settings=settings,
        session_id=body.session_id,
        idempotency_key=idempotency_key,
    )


def queue(
    db: Session,
    *,
    user: User,
    spec: GenerationSpec,
    registry: ProviderRegistry,
    settings: Settings,
    session_id: uuid.UUID | None = None,
    idempotency_key: str | None = None,
) -> tuple[Generation, bool]:
    """Queue a built spec (the entry for callers that build their own, like the OpenAI-compatible
    API): replay, else the prompt filter, the quotas and the engine; (generation, replayed)."""
    key = check_idempotency_key(idempotency_key)
    with engine_errors():
        existing = service.replay_of(db, user.id, key, service.request_fingerprint(spec, session_id, None))
        if existing is not None:
            return existing, True
        admit(db, user, settings, spec)
        generation = service.create_generation(
            db,
            owner_id=user.id,
            spec=spec,
            registry=registry,
            settings=settings,
            session_id=session_id,
            idempotency_key=key,
        )
    return generation, False


def retry(
    db: Session,
    *,
    user: User,
    generation_id: uuid.UUID,
    registry: ProviderRegistry,
    settings: Settings,
    idempotency_key: str | None = None,
) -> tuple[Generation, bool]:
    """Rerun a failed or canceled generation as a new one; (generation, True) for a replay."""
    key = check_idempotency_key(idempotency_key)
    with engine_errors():
        original = service.get_generation(db, generation_id, user.id)
        spec = service.spec_of(db, original)
        fingerprint = service.request_fingerprint(spec, original.session_id, None, retried_from_id=original.id)
        existing = service.replay_of(db, user.id, key, fingerprint)
        if existing is not None:
            return existing, True
        service.check_retriable(original)
        # The rerun is a new generation: it passes the prompt filter and counts like one.
        admit(db, user, settings, spec)
        generation = service.retry_generation(
            db,
            generation_id=generation_id,
            owner_id=user.id,
            registry=registry,
            settings=settings,
            idempotency_key=key,
        )
    return generation, False
