"""The provider contract: what every image backend implements and what the engine relies on.

Providers receive decoded Pillow images and return Pillow images; the engine owns storage,
encoding, retries and events. Providers raise the typed errors below and never decide whether
something is retried.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from PIL import Image

from imagestudio.models.enums import GenerationType
from imagestudio.models.limits import NUM_IMAGES_MAX

# Generation types that read an init image; inpaint also needs a mask.
TYPES_NEEDING_INIT = frozenset(
    {GenerationType.img2img, GenerationType.inpaint, GenerationType.upscale, GenerationType.variation}
)


@dataclass(frozen=True)
class UpscaleSpec:
    """What an upscaling model takes as its source image and what it makes of it."""

    min_side: int = 1
    max_side: int | None = None
    min_pixels: int = 1
    max_pixels: int | None = None
    # Longest side over shortest side of the source, at most.
    max_ratio: float | None = None
    # The output has about this many pixels in the source's shape (whatever the factor);
    # None: the source's sides times the upscale factor.
    output_pixels: int | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> UpscaleSpec:
        known = {item.name for item in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in stored.items() if name in known})

    def output_size(self, source: tuple[int, int], factor: int) -> tuple[int, int]:
        if self.output_pixels is None:
            return source[0] * factor, source[1] * factor
        shape = source[0] / source[1]
        return round(math.sqrt(self.output_pixels * shape)), round(math.sqrt(self.output_pixels / shape))

    def source_problem(self, source: tuple[int, int]) -> str | None:
        """Why the source image cannot be upscaled by this model (None when it can)."""
        width, height = source
        pixels = width * height
        if min(width, height) < self.min_side or (self.max_side is not None and max(width, height) > self.max_side):
            bound = f"{self.min_side} to {self.max_side}" if self.max_side else f"at least {self.min_side}"
            return f"sides of {bound} pixels"
        if pixels < self.min_pixels or (self.max_pixels is not None and pixels > self.max_pixels):
            most = f" to {self.max_pixels:,}" if self.max_pixels else " or more"
            return f"{self.min_pixels:,}{most} pixels in all"
        if self.max_ratio is not None and max(width, height) / min(width, height) > self.max_ratio:
            return f"a shape no longer than {self.max_ratio:g} to 1"
        return None


@dataclass(frozen=True)
class ModelInfo:
    id: str
    label: str
    types: frozenset[GenerationType]
    max_images: int = NUM_IMAGES_MAX
    # Exact sizes the model accepts; None means any size within the provider's bounds.
    sizes: tuple[tuple[int, int], ...] | None = None
    aspect_ratios: tuple[str, ...] | None = None
    # Inclusive (low, high) bounds of `guidance` when the model takes one; None means unchecked.
    guidance_range: tuple[float, float] | None = None
    # For upscaling models: the source they take and the output they make.
    upscale: UpscaleSpec | None = None

    def as_dict(self) -> dict:
        return {
            "upscale": self.upscale.as_dict() if self.upscale else None,
            "id": self.id,
            "label": self.label,
            "types": sorted(self.types),
            "max_images": self.max_images,
            "sizes": [list(s) for s in self.sizes] if self.sizes else None,
            "aspect_ratios": list(self.aspect_ratios) if self.aspect_ratios else None,
            "guidance_range": list(self.guidance_range) if self.guidance_range else None,
        }

    @classmethod
    def from_dict(cls, stored: Mapping[str, Any]) -> ModelInfo:
        """The inverse of as_dict(), for models read back from the providers table."""
        sizes = stored.get("sizes")
        ratios = stored.get("aspect_ratios")
        guidance = stored.get("guidance_range")
        return cls(
            id=str(stored["id"]),
            label=str(stored.get("label") or stored["id"]),
            types=frozenset(GenerationType(t) for t in stored.get("types") or ()),
            max_images=int(stored.get("max_images") or 10),
            sizes=tuple((int(w), int(h)) for w, h in sizes) if sizes else None,
            aspect_ratios=tuple(ratios) if ratios else None,
            guidance_range=(float(guidance[0]), float(guidance[1])) if guidance else None,
            upscale=UpscaleSpec.from_dict(stored["upscale"]) if stored.get("upscale") else None,
        )


@dataclass(frozen=True)
class ProviderCapabilities:
    types: frozenset[GenerationType]
    models: tuple[ModelInfo, ...]
    default_model: str
    max_images: int = NUM_IMAGES_MAX
    min_size: int = 64
    max_size: int = 2048
    size_multiple: int = 8
    upscale_factors: tuple[int, ...] = (2, 4)
    honours_seed: bool = True
    honours_negative_prompt: bool = True
    honours_strength: bool = True
    supports_mask: bool = True
    # Choices a server lists (AUTOMATIC1111, ComfyUI): `params.scheduler` names a sampler,
    # `params.extra.scheduler` a noise schedule, `params.extra.upscaler` an upscaler. Empty: unchecked.
    samplers: tuple[str, ...] = ()
    schedulers: tuple[str, ...] = ()
    upscalers: tuple[str, ...] = ()
    # Provider options a request may set in `params.extra`, with the values each takes
    # (e.g. OpenAI's quality: low, medium, high, auto).
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def model(self, model_id: str | None) -> ModelInfo | None:
        wanted = model_id or self.default_model
        return next((m for m in self.models if m.id == wanted), None)

    def as_dict(self) -> dict:
        return {
            "types": sorted(self.types),
            "default_model": self.default_model,
            "max_images": self.max_images,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "size_multiple": self.size_multiple,
            "upscale_factors": list(self.upscale_factors),
            "honours_seed": self.honours_seed,
            "honours_negative_prompt": self.honours_negative_prompt,
            "honours_strength": self.honours_strength,
            "supports_mask": self.supports_mask,
            "samplers": list(self.samplers),
            "schedulers": list(self.schedulers),
            "upscalers": list(self.upscalers),
            "options": {name: list(values) for name, values in self.options},
        }

    def models_as_list(self) -> list[dict]:
        return [m.as_dict() for m in self.models]

    @classmethod
    def from_stored(cls, capabilities: Mapping[str, Any], models: Sequence[Mapping[str, Any]]) -> ProviderCapabilities:
        """The inverse of as_dict() and models_as_list(), for a row of the providers table."""
        return cls(
            types=frozenset(GenerationType(t) for t in capabilities.get("types") or ()),
            models=tuple(ModelInfo.from_dict(m) for m in models),
            default_model=str(capabilities.get("default_model") or ""),
            max_images=int(capabilities.get("max_images", 10)),
            min_size=int(capabilities.get("min_size", 64)),
            max_size=int(capabilities.get("max_size", 2048)),
            size_multiple=int(capabilities.get("size_multiple", 8)),
            upscale_factors=tuple(int(f) for f in capabilities.get("upscale_factors") or (2, 4)),
            honours_seed=bool(capabilities.get("honours_seed", True)),
            honours_negative_prompt=bool(capabilities.get("honours_negative_prompt", True)),
            honours_strength=bool(capabilities.get("honours_strength", True)),
            supports_mask=bool(capabilities.get("supports_mask", True)),
            samplers=tuple(str(name) for name in capabilities.get("samplers") or ()),
            schedulers=tuple(str(name) for name in capabilities.get("schedulers") or ()),
            upscalers=tuple(str(name) for name in capabilities.get("upscalers") or ()),
            options=tuple(
                (str(name), tuple(str(value) for value in values))
                for name, values in (capabilities.get("options") or {}).items()
            ),
        )


@dataclass(frozen=True)
class GenerationRequest:
    """One generation as a provider sees it. Sizes are final (the engine resolved aspect ratios)."""

    type: GenerationType
    prompt: str
    model: str
    num_images: int = 1
    width: int = 512
    height: int = 512
    negative_prompt: str | None = None
    aspect_ratio: str | None = None
    steps: int | None = None
    guidance: float | None = None
    strength: float | None = None
    scheduler: str | None = None
    seed: int | None = None
    upscale_factor: int | None = None
    init_image: Image.Image | None = None
    mask_image: Image.Image | None = None
    reference_images: Sequence[Image.Image] = ()
    extra: Mapping[str, object] = field(default_factory=dict)
    # Intermediate pictures wanted per output (0-3), for providers that can render them.
    previews: int = 0
    # The owner's own key for a hosted service, for this request only (None: the studio's key).
    # Never kept by the adapter, never shown in a repr.
    api_key: str | None = field(default=None, repr=False)


@dataclass
class GeneratedImage:
    image: Image.Image
    # The seed that really produced this image, when the backend tells (None when it cannot).
    seed: int | None = None


@dataclass
class GenerationResult:
    images: list[GeneratedImage]
    model: str
    revised_prompt: str | None = None
    cost: Decimal | None = None
    usage: dict = field(default_factory=dict)


class ProgressCallback(Protocol):
    """Called by providers after each step; cheap and safe to call from any thread.

    `index` is the output the step belongs to, for a provider that renders a batch one image after
    another (its `total` then counts the steps of every image); None when the batch renders together.
    A provider that can show work in progress passes `preview` (an intermediate picture of output
    `index`) when the request asked for previews; the caller may keep it or drop it."""

    def __call__(
        self, step: int, total: int, /, *, preview: Image.Image | None = None, index: int | None = None
    ) -> None: ...


def preview_passes(steps: int, previews: int) -> frozenset[int]:
    """The steps (or passes) after which to show the picture: `previews` of them, evenly spaced, never the last
    (the finished image is not a preview)."""
    wanted = max(0, min(previews, steps - 1))
    return frozenset(round(steps * k / (wanted + 1)) for k in range(1, wanted + 1)) - {0, steps}


class CancellationToken:
    """Set by the engine when a cancel is requested; providers check it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise GenerationCanceled()


# ---- typed errors: the engine's retry policy is decided by the class, never by the adapter ----


class ProviderError(Exception):
    code = "provider_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class RetriableError(ProviderError):
    """A transient failure (rate limit, 5xx, timeout). retry_after is the backend's hint in seconds."""

    code = "provider_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class ContentRejectedError(ProviderError):
    """The backend refused the prompt or an image on content grounds. Never retried."""

    code = "content_rejected"


class NotConfiguredError(ProviderError):
    """The provider lacks a key, a URL or a model; a fallback provider may take over."""

    code = "provider_not_configured"


class PermanentError(ProviderError):
    """A failure that will recur on retry (bad request, auth failure, unsupported input)."""

    code = "provider_failed"


class GenerationCanceled(Exception):
    """Raised by a provider that saw its cancellation token set."""


class UnsupportedRequest(ValueError):
    """A request the provider cannot serve, found before anything is queued. field names the input."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@runtime_checkable
class Provider(Protocol):
    name: str
    kind: str

    def capabilities(self) -> ProviderCapabilities: ...

    def configuration_problem(self) -> str | None:
        """None when ready to serve; otherwise a human sentence saying what is missing."""
        ...

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ImageByImageProvider(Provider, Protocol):
    """A provider that makes one image per call (Stability AI, Gemini) and hands each over as it
    arrives, so the engine stores it before the next call and a retry asks only for what is missing.

    `generate_each` makes the images of `indices` (batch indices, in that order) and yields each as
    `(index, result)`, where `result` holds that one image with the model, usage and cost of its
    call. Image `index` must come out as it would in a whole batch (e.g. seed + index), and progress
    counts images out of `request.num_images`, the ones made before included."""

    def generate_each(
        self,
        request: GenerationRequest,
        indices: Sequence[int],
        progress: ProgressCallback,
        cancel: CancellationToken,
    ) -> AsyncIterator[tuple[int, GenerationResult]]: ...


async def collect_each(
    provider: ImageByImageProvider, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
) -> GenerationResult:
    """The whole batch from `generate_each`, as one result (what `generate` answers for such providers)."""
    pieces = [piece async for _, piece in provider.generate_each(request, range(request.num_images), progress, cancel)]
    return merge_results(pieces, model=request.model)


def merge_results(pieces: Sequence[GenerationResult], *, model: str) -> GenerationResult:
    """One result from per-image results, in the given order: usage counters and costs add up."""
    usage: dict[str, Any] = {}
    for piece in pieces:
        for name, value in piece.usage.items():
            previous = usage.get(name)
            if _is_number(value) and (previous is None or _is_number(previous)):
                usage[name] = (previous or 0) + value
            else:
                usage[name] = value
    costs = [piece.cost for piece in pieces if piece.cost is not None]
    return GenerationResult(
        images=[image for piece in pieces for image in piece.images],
        model=next((piece.model for piece in pieces if piece.model), model),
        revised_prompt=next((piece.revised_prompt for piece in pieces if piece.revised_prompt), None),
        cost=sum(costs, Decimal(0)) if costs else None,
        usage=usage,
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def model_for_type(caps: ProviderCapabilities, type: GenerationType | str) -> ModelInfo | None:
    """The default model when it serves the type, else the first model that does."""
    default = caps.model(None)
    if default is not None and type in default.types:
        return default
    return next((m for m in caps.models if type in m.types), default)


def check_request(
    caps: ProviderCapabilities,
    *,
    type: GenerationType,
    model: str | None,
    num_images: int,
    width: int,
    height: int,
    has_init: bool,
    has_mask: bool,
    upscale_factor: int | None = None,
    guidance: float | None = None,
    scheduler: str | None = None,
    extra: Mapping[str, object] | None = None,
    source_size: tuple[int, int] | None = None,
) -> None:
    """Refuse, before queueing, a request this provider cannot serve; the error names the limit."""
    info = _serving_model(caps, type, model)
    limit = min(caps.max_images, info.max_images)
    if not 1 <= num_images <= limit:
        raise UnsupportedRequest("num_images", f"num_images must be between 1 and {limit} for {info.id}")
    _check_inputs(caps, type, has_init=has_init, has_mask=has_mask)
    _check_guidance(info, guidance)
    _check_choices(caps, scheduler, extra or {})
    if type == GenerationType.upscale:
        _check_upscale(caps, info, upscale_factor, source_size)
        return  # the output size follows the source image
    _check_size(caps, info, width, height)


def _serving_model(caps: ProviderCapabilities, type: GenerationType, model: str | None) -> ModelInfo:
    if type not in caps.types:
        served = ", ".join(sorted(caps.types))
        raise UnsupportedRequest("type", f"this provider does not do {type}; it does {served}")
    info = caps.model(model)
    if info is None:
        known = ", ".join(m.id for m in caps.models)
        raise UnsupportedRequest("model", f"unknown model {model!r}; available: {known}")
    if type not in info.types:
        raise UnsupportedRequest("type", f"model {info.id} does not do {type}")
    return info


def _check_inputs(caps: ProviderCapabilities, type: GenerationType, *, has_init: bool, has_mask: bool) -> None:
    if type in TYPES_NEEDING_INIT and not has_init:
        raise UnsupportedRequest("source_asset_id", f"{type} needs a source image")
    if type == GenerationType.inpaint and not has_mask:
        raise UnsupportedRequest("mask_asset_id", "inpaint needs a mask image")
    if type == GenerationType.inpaint and not caps.supports_mask:
        raise UnsupportedRequest("mask_asset_id", "this provider does not accept masks")


def _check_guidance(info: ModelInfo, guidance: float | None) -> None:
    if guidance is not None and info.guidance_range is not None:
        low, high = info.guidance_range
        if not low <= guidance <= high:
            raise UnsupportedRequest("guidance", f"guidance must be between {low:g} and {high:g} for {info.id}")


def _check_choices(caps: ProviderCapabilities, scheduler: str | None, extra: Mapping[str, object]) -> None:
    """Sampler, noise schedule and upscaler must be ones the server listed (when it listed any)."""
    wanted = (
        ("scheduler", scheduler, caps.samplers, "sampler"),
        ("params.extra.scheduler", extra.get("scheduler"), caps.schedulers, "scheduler"),
        ("params.extra.upscaler", extra.get("upscaler"), caps.upscalers, "upscaler"),
    )
    for field_name, value, listed, what in wanted:
        if value is not None and listed and value not in listed:
            shown = ", ".join(listed[:20]) + (", ..." if len(listed) > 20 else "")
            raise UnsupportedRequest(field_name, f"unknown {what} {value!r}; this server has: {shown}")
    for name, allowed in caps.options:
        value = extra.get(name)
        if value is not None and value not in allowed:
            raise UnsupportedRequest(f"params.extra.{name}", f"{name} must be one of {', '.join(allowed)}")


def _check_upscale(
    caps: ProviderCapabilities, info: ModelInfo, upscale_factor: int | None, source_size: tuple[int, int] | None
) -> None:
    spec = info.upscale
    if spec is not None and source_size is not None and (problem := spec.source_problem(source_size)):
        width, height = source_size
        raise UnsupportedRequest("source_asset_id", f"{info.id} needs a source with {problem}; it is {width}x{height}")
    if spec is not None and spec.output_pixels is not None:
        if upscale_factor is not None:
            megapixels = spec.output_pixels / 1_000_000
            raise UnsupportedRequest(
                "upscale_factor", f"{info.id} makes about {megapixels:.1f} megapixels whatever the factor; leave it out"
            )
        return
    _check_upscale_factor(caps, upscale_factor)


def _check_upscale_factor(caps: ProviderCapabilities, upscale_factor: int | None) -> None:
    factor = upscale_factor or caps.upscale_factors[0]
    if factor not in caps.upscale_factors:
        allowed = ", ".join(str(f) for f in caps.upscale_factors)
        raise UnsupportedRequest("upscale_factor", f"upscale factor must be one of {allowed}")


def _check_size(caps: ProviderCapabilities, info: ModelInfo, width: int, height: int) -> None:
    if info.sizes is not None:
        if (width, height) not in info.sizes:
            allowed = ", ".join(f"{w}x{h}" for w, h in info.sizes)
            raise UnsupportedRequest("width", f"{info.id} accepts only these sizes: {allowed}")
        return
    for name, value in (("width", width), ("height", height)):
        if not caps.min_size <= value <= caps.max_size:
            raise UnsupportedRequest(name, f"{name} must be between {caps.min_size} and {caps.max_size}")
        if value % caps.size_multiple:
            raise UnsupportedRequest(name, f"{name} must be a multiple of {caps.size_multiple}")
