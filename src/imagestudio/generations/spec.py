"""A generation request as the engine takes it, and the rules that turn it into final values
(sizes from aspect ratios, prompts from prompt options)."""

from __future__ import annotations

import math
import re
import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from imagestudio.models.generations import MAX_IMAGES
from imagestudio.providers.base import GenerationType, ModelInfo, ProviderCapabilities

DEFAULT_SIDE = 512
MAX_PROMPT_LENGTH = 10_000
MAX_REFERENCES = 8
# Aspect ratios wider than this either way are refused: they make unusable strips.
MAX_RATIO = 8.0
SEED_LIMIT = 2**63 - 1

_ASPECT_RATIO = re.compile(r"^\s*(\d{1,4})\s*[:x/]\s*(\d{1,4})\s*$")
OptionText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class PromptOptions(BaseModel):
    """Seed 001's prompt builder: each set option is appended to the prompt the provider sees."""

    model_config = ConfigDict(extra="forbid")

    shot_type: OptionText | None = None
    camera_angle: OptionText | None = None
    style: OptionText | None = None
    location: OptionText | None = None
    lighting: OptionText | None = None
    weather: OptionText | None = None
    # True when the user edited the options by hand rather than picking presets (recorded as given).
    custom: bool = False


class GenerationSpec(BaseModel):
    """The request fields of a generation (the API's body without session and message)."""

    model_config = ConfigDict(extra="forbid")

    type: GenerationType = GenerationType.text2img
    prompt: str = Field(default="", max_length=MAX_PROMPT_LENGTH)
    negative_prompt: str | None = Field(default=None, max_length=MAX_PROMPT_LENGTH)
    provider: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=200)
    num_images: int = Field(default=1, ge=1, le=MAX_IMAGES)
    width: int | None = Field(default=None, ge=1, le=16384)
    height: int | None = Field(default=None, ge=1, le=16384)
    aspect_ratio: str | None = None
    steps: int | None = Field(default=None, ge=1, le=1000)
    guidance: float | None = Field(default=None, ge=0, le=100)
    strength: float | None = Field(default=None, ge=0, le=1)
    scheduler: str | None = Field(default=None, max_length=64)
    seed: int | None = Field(default=None, ge=0, le=SEED_LIMIT)
    upscale_factor: int | None = Field(default=None, ge=2, le=8)
    prompt_options: PromptOptions = Field(default_factory=PromptOptions)
    # A language model writes the prompt sent (the worker asks it before rendering).
    enhance_prompt: bool = False
    source_asset_id: uuid.UUID | None = None
    mask_asset_id: uuid.UUID | None = None
    reference_asset_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_REFERENCES)
    parent_generation_id: uuid.UUID | None = None
    priority: int = Field(default=0, ge=-100, le=100)
    # Provider-specific extras (quality, style presets, ...), passed through untouched.
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("aspect_ratio")
    @classmethod
    def _check_ratio(cls, value: str | None) -> str | None:
        if value is None:
            return None
        width, height = parse_aspect_ratio(value)
        return f"{width}:{height}"

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None

    @field_validator("reference_asset_ids")
    @classmethod
    def _distinct(cls, value: list[uuid.UUID]) -> list[uuid.UUID]:
        if len(set(value)) != len(value):
            raise ValueError("reference images must be distinct")
        return value


def parse_aspect_ratio(value: str) -> tuple[int, int]:
    """'16:9' (also '16x9', '16/9') as a pair; raises ValueError for anything else."""
    match = _ASPECT_RATIO.match(value)
    if not match:
        raise ValueError(f"aspect ratio must look like 16:9, not {value!r}")
    width, height = int(match[1]), int(match[2])
    if width == 0 or height == 0:
        raise ValueError("aspect ratio sides must be positive")
    if max(width / height, height / width) > MAX_RATIO:
        raise ValueError(f"aspect ratio {value} is too extreme (at most {MAX_RATIO:g}:1)")
    return width, height


def reduced_ratio(width: int, height: int) -> str:
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}"


def _round_to(value: float, multiple: int) -> int:
    return max(multiple, round(value / multiple) * multiple)


def _fit(width: float, height: float, caps: ProviderCapabilities) -> tuple[int, int]:
    """Scale (keeping the ratio) into the provider's bounds, then round to its size multiple."""
    scale = 1.0
    if max(width, height) > caps.max_size:
        scale = caps.max_size / max(width, height)
    elif min(width, height) < caps.min_size:
        scale = caps.min_size / min(width, height)
    m = caps.size_multiple
    low = math.ceil(caps.min_size / m) * m
    high = caps.max_size // m * m
    return (
        min(high, max(low, _round_to(width * scale, m))),
        min(high, max(low, _round_to(height * scale, m))),
    )


def resolve_size(
    spec: GenerationSpec,
    caps: ProviderCapabilities,
    model: ModelInfo | None,
    source_size: tuple[int, int] | None,
) -> tuple[int, int, str | None]:
    """Final (width, height, aspect_ratio) for a request.

    Explicit sizes win; then an aspect ratio (the model's closest listed size, or about 512x512 worth
    of pixels in that shape); then the source image's size for edits; then the model's first listed
    size or a 512 square. Upscales follow the source times the factor."""
    ratio = parse_aspect_ratio(spec.aspect_ratio) if spec.aspect_ratio else None
    if spec.type == GenerationType.upscale:
        if source_size is None:  # refused later by check_request, with the right field
            return DEFAULT_SIDE, DEFAULT_SIDE, spec.aspect_ratio
        factor = spec.upscale_factor or caps.upscale_factors[0]
        return source_size[0] * factor, source_size[1] * factor, reduced_ratio(*source_size)
    if spec.width and spec.height:
        return spec.width, spec.height, spec.aspect_ratio or reduced_ratio(spec.width, spec.height)
    if model is not None and model.sizes:
        if ratio is None and (spec.width or spec.height):
            side = spec.width or spec.height
            matching = [size for size in model.sizes if side in size]
            chosen = matching[0] if matching else model.sizes[0]
        elif ratio is None:
            chosen = model.sizes[0]
        else:
            wanted = ratio[0] / ratio[1]
            chosen = min(model.sizes, key=lambda size: (abs(math.log(size[0] / size[1] / wanted)), -size[0] * size[1]))
        return chosen[0], chosen[1], spec.aspect_ratio or reduced_ratio(*chosen)
    if ratio is None and source_size is not None and spec.type != GenerationType.text2img:
        ratio = source_size
        if not (spec.width or spec.height):
            width, height = _fit(*source_size, caps)
            return width, height, reduced_ratio(width, height)
    if spec.width or spec.height:
        shape = ratio[0] / ratio[1] if ratio else 1.0
        width = spec.width or spec.height / shape  # type: ignore[operator]
        height = spec.height or spec.width / shape  # type: ignore[operator]
        fitted = _fit(width, height, caps)
        return fitted[0], fitted[1], spec.aspect_ratio or reduced_ratio(*fitted)
    if ratio is None:
        side = min(max(DEFAULT_SIDE, caps.min_size), caps.max_size)
        width, height = _fit(side, side, caps)
        return width, height, spec.aspect_ratio or "1:1"
    area = float(max(DEFAULT_SIDE, caps.min_size) ** 2)
    shape = ratio[0] / ratio[1]
    width, height = _fit(math.sqrt(area * shape), math.sqrt(area / shape), caps)
    return width, height, spec.aspect_ratio


_OPTION_PHRASES = (
    ("shot_type", "{}"),
    ("camera_angle", "{}"),
    ("style", "{} style"),
    ("location", "set in {}"),
    ("lighting", "{} lighting"),
    ("weather", "{} weather"),
)


def compose_prompt(prompt: str, options: PromptOptions) -> str | None:
    """The prompt with its options appended, or None when no option is set (the prompt goes as is)."""
    phrases = [template.format(value) for name, template in _OPTION_PHRASES if (value := getattr(options, name))]
    if not phrases:
        return None
    base = prompt.rstrip(" ,.;")
    return ", ".join([base, *phrases]) if base else ", ".join(phrases)
