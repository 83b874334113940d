"""A generation request as the engine takes it, and the rules that turn it into final values
(sizes from aspect ratios, prompts from prompt options)."""

from __future__ import annotations

import math
import re
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from imagestudio.language.tasks import OPTION_PHRASES
from imagestudio.models import limits
from imagestudio.providers.base import GenerationType, ModelInfo, ProviderCapabilities, UnsupportedRequest

DEFAULT_SIDE = 512
# Generation types that may take reference images.
TYPES_TAKING_REFERENCES = frozenset(
    {GenerationType.text2img, GenerationType.img2img, GenerationType.inpaint, GenerationType.variation}
)

_ASPECT_RATIO = re.compile(r"^\s*(\d{1,4})\s*[:x/]\s*(\d{1,4})\s*$")

# The bounded value types every shape of a request (API body, spec, CLI) is built from.
Prompt = Annotated[str, Field(max_length=limits.PROMPT_MAX_LENGTH)]
NegativePrompt = Annotated[str, Field(max_length=limits.NEGATIVE_PROMPT_MAX_LENGTH)]
ProviderName = Annotated[str, Field(max_length=limits.PROVIDER_NAME_MAX_LENGTH)]
ModelId = Annotated[str, Field(max_length=limits.MODEL_ID_MAX_LENGTH)]
NumImages = Annotated[int, Field(ge=limits.NUM_IMAGES_MIN, le=limits.NUM_IMAGES_MAX)]
Side = Annotated[int, Field(ge=limits.SIDE_MIN, le=limits.SIDE_MAX)]
Steps = Annotated[int, Field(ge=limits.STEPS_MIN, le=limits.STEPS_MAX)]
Guidance = Annotated[float, Field(ge=limits.GUIDANCE_MIN, le=limits.GUIDANCE_MAX)]
Strength = Annotated[float, Field(ge=limits.STRENGTH_MIN, le=limits.STRENGTH_MAX)]
Scheduler = Annotated[str, Field(max_length=limits.SCHEDULER_MAX_LENGTH)]
Seed = Annotated[int, Field(ge=limits.SEED_MIN, le=limits.SEED_MAX)]
UpscaleFactor = Literal[limits.UPSCALE_FACTORS]  # type: ignore[valid-type]
Priority = Annotated[int, Field(ge=limits.PRIORITY_MIN, le=limits.PRIORITY_MAX)]
ExtraParams = Annotated[dict[str, Any], Field(max_length=limits.EXTRA_PARAMS_MAX)]
ReferenceIds = Annotated[list[uuid.UUID], Field(max_length=limits.REFERENCES_MAX)]
OptionText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=limits.PROMPT_OPTION_MAX_LENGTH)]
LocationText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=limits.LOCATION_MAX_LENGTH)]


class PromptOptions(BaseModel):
    """Seed 001's prompt builder: each set option is appended to the prompt the provider sees."""

    model_config = ConfigDict(extra="forbid")

    shot_type: OptionText | None = None
    camera_angle: OptionText | None = None
    style: OptionText | None = None
    location: LocationText | None = None
    lighting: OptionText | None = None
    weather: OptionText | None = None
    # True when the user edited the options by hand rather than picking presets (recorded as given).
    custom: bool = False


class SamplingParams(BaseModel):
    """How to sample: flat in GenerationSpec, under `params` in the API body."""

    model_config = ConfigDict(extra="forbid")

    steps: Steps | None = None
    guidance: Guidance | None = None
    strength: Strength | None = None
    scheduler: Scheduler | None = None
    seed: Seed | None = None
    upscale_factor: UpscaleFactor | None = None


class GenerationSpec(SamplingParams):
    """A generation's parameters: the one value object the API body, the CLI and a retry all become,
    bounded by the limits in models/limits.py. The stored row and the provider's request are made from it."""

    type: GenerationType = GenerationType.text2img
    prompt: Prompt = ""
    negative_prompt: NegativePrompt | None = None
    provider: ProviderName | None = None
    model: ModelId | None = None
    num_images: NumImages = 1
    width: Side | None = None
    height: Side | None = None
    aspect_ratio: str | None = None
    prompt_options: PromptOptions = Field(default_factory=PromptOptions)
    # A language model writes the prompt sent (the worker asks it before rendering).
    enhance_prompt: bool = False
    source_asset_id: uuid.UUID | None = None
    mask_asset_id: uuid.UUID | None = None
    reference_asset_ids: ReferenceIds = Field(default_factory=list)
    parent_generation_id: uuid.UUID | None = None
    priority: Priority = 0
    # Provider-specific extras (quality, style presets, ...), passed through untouched.
    params: ExtraParams = Field(default_factory=dict)

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
    if max(width / height, height / width) > limits.ASPECT_RATIO_MAX:
        raise ValueError(f"aspect ratio {value} is too extreme (at most {limits.ASPECT_RATIO_MAX:g}:1)")
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


def check_shape(spec: GenerationSpec) -> None:
    """One side alone says nothing about the other: it needs the other side or an aspect ratio."""
    if spec.type == GenerationType.upscale or spec.aspect_ratio or bool(spec.width) == bool(spec.height):
        return
    given, missing = ("width", "height") if spec.width else ("height", "width")
    raise UnsupportedRequest(missing, f"give {missing} with {given}, or an aspect_ratio to derive it from")


def resolve_size(
    spec: GenerationSpec,
    caps: ProviderCapabilities,
    model: ModelInfo | None,
    source_size: tuple[int, int] | None,
) -> tuple[int, int, str | None]:
    """Final (width, height, aspect_ratio) for a request.

    Explicit sizes win; then an aspect ratio (the model's closest listed size, or about 512x512 worth
    of pixels in that shape, or one side given and the other derived); then the source image's size
    for edits; then the model's first listed size or a 512 square. Upscales follow the source times
    the factor, or the fixed output area of a model that makes one. Raises UnsupportedRequest for
    one side without the other or a ratio."""
    check_shape(spec)
    if spec.type == GenerationType.upscale:
        if source_size is None:  # refused later by check_request, with the right field
            return DEFAULT_SIDE, DEFAULT_SIDE, spec.aspect_ratio
        factor = spec.upscale_factor or caps.upscale_factors[0]
        if model is not None and model.upscale is not None:
            return (*model.upscale.output_size(source_size, factor), reduced_ratio(*source_size))
        return source_size[0] * factor, source_size[1] * factor, reduced_ratio(*source_size)
    if spec.width and spec.height:
        return spec.width, spec.height, spec.aspect_ratio or reduced_ratio(spec.width, spec.height)
    ratio = parse_aspect_ratio(spec.aspect_ratio) if spec.aspect_ratio else None
    if model is not None and model.sizes:
        width, height = _closest_listed(model.sizes, ratio)
    elif ratio is None and source_size is not None and spec.type != GenerationType.text2img:
        width, height = _fit(*source_size, caps)
    else:
        width, height = _shaped(spec, caps, ratio)
    return width, height, spec.aspect_ratio or reduced_ratio(width, height)


def _closest_listed(sizes: tuple[tuple[int, int], ...], ratio: tuple[int, int] | None) -> tuple[int, int]:
    """The listed size closest to the ratio in shape (the larger on a tie); the first without a ratio."""
    if ratio is None:
        return sizes[0]
    wanted = ratio[0] / ratio[1]
    return min(sizes, key=lambda size: (abs(math.log(size[0] / size[1] / wanted)), -size[0] * size[1]))


def _shaped(spec: GenerationSpec, caps: ProviderCapabilities, ratio: tuple[int, int] | None) -> tuple[int, int]:
    """A size from a ratio (and one side, if given), or a default square, fitted to the provider."""
    if ratio is None:
        side = min(max(DEFAULT_SIDE, caps.min_size), caps.max_size)
        return _fit(side, side, caps)
    shape = ratio[0] / ratio[1]
    if spec.width:
        return _fit(spec.width, spec.width / shape, caps)
    if spec.height:
        return _fit(spec.height * shape, spec.height, caps)
    area = float(max(DEFAULT_SIDE, caps.min_size) ** 2)
    return _fit(math.sqrt(area * shape), math.sqrt(area / shape), caps)


def compose_prompt(prompt: str, options: PromptOptions) -> str | None:
    """The prompt with its options appended, or None when no option is set (the prompt goes as is)."""
    phrases = [template.format(value) for name, template in OPTION_PHRASES if (value := getattr(options, name))]
    if not phrases:
        return None
    base = prompt.rstrip(" ,.;")
    return ", ".join([base, *phrases]) if base else ", ".join(phrases)
