"""Request and response shapes of /api/v1/generations (and the generation part of chat turns)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from imagestudio.assets.schemas import AssetOut
from imagestudio.generations.spec import (
    ModelId,
    NegativePrompt,
    NumImages,
    Priority,
    Prompt,
    PromptOptions,
    ProviderName,
    ReferenceIds,
    SamplingParams,
    Side,
)
from imagestudio.kit.money import Money
from imagestudio.models import limits
from imagestudio.models.enums import GenerationType, InputPurpose, PromptMethod, RunStatus


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class GenerationParams(SamplingParams, StrictModel):
    """The sampling part of a request body, and provider-specific extras passed through untouched."""

    # e.g. OpenAI quality
    extra: Annotated[dict[str, str | int | float | bool], Field(max_length=limits.EXTRA_PARAMS_MAX)] = Field(
        default_factory=dict
    )


class GenerationOverrides(StrictModel):
    """The parts of a generation request a chat turn may override."""

    provider: ProviderName | None = None
    model: ModelId | None = None
    negative_prompt: NegativePrompt | None = None
    num_images: NumImages = 1
    width: Side | None = None
    height: Side | None = None
    aspect_ratio: str | None = Field(default=None, pattern=limits.ASPECT_RATIO_PATTERN)
    params: GenerationParams = Field(default_factory=GenerationParams)
    prompt_options: PromptOptions = Field(default_factory=PromptOptions)
    enhance_prompt: StrictBool | None = Field(
        default=None,
        description="Ask the language model to rewrite the prompt (with the options, and a description of the "
        "source image when iterating). Left out: your enhance_prompt setting.",
    )


class GenerationCreate(GenerationOverrides):
    """POST /generations: a GenerationSpec with the sampling fields nested under `params`."""

    session_id: uuid.UUID | None = None
    type: GenerationType = GenerationType.text2img
    prompt: Prompt = ""
    source_asset_id: uuid.UUID | None = None
    mask_asset_id: uuid.UUID | None = None
    reference_asset_ids: ReferenceIds = Field(default_factory=list)
    parent_generation_id: uuid.UUID | None = None
    priority: Priority = 0


class GenerationParamsOut(BaseModel):
    """GenerationParams as stored. Unbounded: defaults from account settings and the CLI accept wider
    ranges than a request body does, and an answer must never fail on them."""

    steps: int | None = None
    guidance: float | None = None
    strength: float | None = None
    scheduler: str | None = None
    seed: int | None = None
    upscale_factor: int | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class PromptOptionsOut(BaseModel):
    """PromptOptions as stored (unbounded for the same reason)."""

    shot_type: str | None = None
    camera_angle: str | None = None
    style: str | None = None
    location: str | None = None
    lighting: str | None = None
    weather: str | None = None
    custom: bool = False


class GenerationError(BaseModel):
    code: str
    message: str
    # False when running it again would fail the same way (content refused, a request the provider
    # cannot serve, a source image that is gone); the studio then offers no retry.
    retriable: bool = True


class PromptPlanOut(BaseModel):
    """How the sent prompt was made: the language model that wrote it, or why the template stood in."""

    provider: str | None = None
    model: str | None = None
    failure: GenerationError | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class GenerationProgress(BaseModel):
    step: int
    total: int


class GenerationInputOut(BaseModel):
    asset_id: uuid.UUID
    role: InputPurpose


class GenerationOut(BaseModel):
    id: uuid.UUID
    session_id: uuid.UUID | None
    message_id: uuid.UUID | None
    parent_generation_id: uuid.UUID | None
    retried_from_id: uuid.UUID | None
    type: GenerationType
    status: RunStatus
    provider: str
    model: str
    served_by: str | None
    prompt: str
    negative_prompt: str | None
    # The prompt as sent to the provider, when it differs from `prompt` (composed from `prompt_options`,
    # or written by a language model: see prompt_method).
    enhanced_prompt: str | None
    # The provider's rewrite of the prompt it rendered, when it reports one.
    revised_prompt: str | None
    enhance_prompt: bool
    # language_model, template or none; null while a worker has yet to ask the language model.
    prompt_method: PromptMethod | None
    prompt_plan: PromptPlanOut | None
    prompt_options: PromptOptionsOut
    aspect_ratio: str | None
    width: int
    height: int
    num_images: int
    params: GenerationParamsOut
    error: GenerationError | None
    # What the provider charged, from the price table and the usage it reported; null when the
    # model has no price (self-hosted and local providers, or a model not in the table).
    cost: Money | None
    # The provider's own usage counters (tokens, requests, steps), as it reported them.
    usage: dict
    # The owner's own provider key paid for it, not the studio's (it counts against no budget).
    own_key: bool
    progress: GenerationProgress
    attempt: int
    max_attempts: int
    priority: int
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: int | None
    inputs: list[GenerationInputOut]
    outputs: list[AssetOut]


class GenerationEventOut(BaseModel):
    """One stored lifecycle event; `id` is the SSE event id used with Last-Event-ID."""

    id: int
    generation_id: uuid.UUID
    session_id: uuid.UUID | None
    sequence: int
    # The run that wrote it (retries of one generation are attempts 1, 2, ...; 0 before any run).
    attempt: int = 0
    type: str
    payload: dict
    created_at: datetime


class PromptHistoryItem(BaseModel):
    prompt: str
    count: int
    last_used_at: datetime




