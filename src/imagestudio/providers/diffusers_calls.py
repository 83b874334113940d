"""How the diffusers provider calls a pipeline: the keyword arguments for one generation or for a
batch of several, and the step callback that reports progress, previews and cancels per generation.

torch is imported only while a pipeline runs, like in the provider itself.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from PIL import Image

from imagestudio.models.enums import GenerationType
from imagestudio.providers.base import GenerationRequest, PermanentError, ProgressCallback, preview_passes
from imagestudio.providers.batching import BatchMember

logger = logging.getLogger(__name__)


class BatchKey(NamedTuple):
    """What generations must share to be rendered by one pipeline call. Prompts, negative prompts,
    seeds and image counts may differ; whether a negative prompt is given may not (SDXL, for one,
    encodes a missing negative prompt as zeros and an empty one as text)."""

    model: str
    type: GenerationType
    width: int
    height: int
    steps: int | None
    guidance: float | None
    scheduler: str | None
    negative: bool


def step_callback(
    progress: ProgressCallback, stop_requested: Callable[[], bool], requested_steps: int | None, previews: int = 0
) -> Callable[..., dict]:
    """The callback of a pipeline call that renders one generation."""

    def on_step_end(pipeline: Any, step: int, timestep: Any, tensors: dict) -> dict:
        # The pipeline knows the real count (img2img runs only strength x steps).
        total = getattr(pipeline, "_num_timesteps", None) or requested_steps or step + 1
        report_step(progress, pipeline, tensors, step + 1, total, previews)
        if stop_requested():
            pipeline._interrupt = True  # the denoising loop skips its remaining steps
        return tensors

    return on_step_end


def batch_step_callback(members: Sequence[BatchMember], requested_steps: int | None) -> Callable[..., dict]:
    """The callback of a call shared by several generations: each member hears only of its own images
    (its rows of the batch), a canceled member hears nothing more, and when every member is canceled
    the call stops."""

    def on_step_end(pipeline: Any, step: int, timestep: Any, tensors: dict) -> dict:
        total = getattr(pipeline, "_num_timesteps", None) or requested_steps or step + 1
        first_row = 0
        wanted = 0
        for member in members:
            rows = slice(first_row, first_row + member.images)
            first_row += member.images
            if member.dropped or member.stop_requested():
                continue
            wanted += 1
            report_step(member.progress, pipeline, tensors, step + 1, total, member.request.previews, rows)
        if not wanted:
            pipeline._interrupt = True
        return tensors

    return on_step_end


def report_step(
    progress: ProgressCallback,
    pipeline: Any,
    tensors: dict,
    step: int,
    total: int,
    previews: int,
    rows: slice = slice(None),
) -> None:
    # The generation's images denoise together, so a step is every image's (no index). At the few
    # steps chosen for previews (at most `previews`, spread out), each image's picture so far goes along.
    pictures = preview_pictures(pipeline, tensors, rows) if step in preview_passes(total, previews) else []
    if pictures:
        for index, picture in enumerate(pictures):
            progress(step, total, preview=picture, index=index)
    else:
        progress(step, total)


def preview_pictures(pipeline: Any, tensors: dict, rows: slice = slice(None)) -> list[Image.Image]:
    """The pictures so far of the batch's `rows`: the current latents through the pipeline's own VAE,
    one image at a time (so a preview never needs the memory of the whole batch). Empty when this
    pipeline's latents cannot be decoded here (packed latents, no VAE): a missing preview must never
    fail a generation."""
    latents = tensors.get("latents")
    vae = getattr(pipeline, "vae", None)
    processor = getattr(pipeline, "image_processor", None)
    if latents is None or vae is None or processor is None or getattr(latents, "ndim", 0) != 4:
        return []
    import torch

    scaling = getattr(vae.config, "scaling_factor", 1.0) or 1.0
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    pictures = []
    try:
        with torch.no_grad():
            for one in latents[rows].split(1):
                decoded = vae.decode(one.to(vae.dtype) / scaling + shift, return_dict=False)[0]
                pictures += processor.postprocess(decoded, output_type="pil")
    except Exception:  # a preview is optional; the generation goes on without it
        logger.warning("a preview could not be decoded", exc_info=True)
        return []
    return pictures


def call_arguments(
    pipe: Any, request: GenerationRequest, generators: list[Any], on_step_end: Callable[..., dict]
) -> dict[str, Any]:
    """Keyword arguments for this pipe, leaving out what it does not take and what the request left unset."""
    size = (request.width, request.height)
    candidates: dict[str, Any] = {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "num_inference_steps": request.steps,
        "guidance_scale": request.guidance,
        "num_images_per_prompt": request.num_images,
        "generator": generators,
        "callback_on_step_end": on_step_end,
        "output_type": "pil",
    }
    if request.type == GenerationType.text2img:
        candidates |= {"width": request.width, "height": request.height}
    else:
        assert request.init_image is not None  # checked by _validate
        candidates |= {"image": fit(request.init_image, "RGB", size), "strength": request.strength}
    if request.type == GenerationType.inpaint:
        assert request.mask_image is not None
        # Our masks are "L" with white = repaint, which is what diffusers expects.
        candidates |= {
            "mask_image": fit(request.mask_image, "L", size),
            "width": request.width,
            "height": request.height,
        }
    return _accepted(pipe, candidates)


def batch_call_arguments(
    pipe: Any, requests: Sequence[GenerationRequest], generators: list[Any], on_step_end: Callable[..., dict]
) -> dict[str, Any]:
    """Keyword arguments for one text2img call rendering several generations (equal in their BatchKey):
    one prompt per image, in the order of `generators`, so image k is denoised from generator k's noise."""
    first = requests[0]
    negatives = [request.negative_prompt or "" for request in requests for _ in range(request.num_images)]
    candidates: dict[str, Any] = {
        "prompt": [request.prompt for request in requests for _ in range(request.num_images)],
        "negative_prompt": negatives if first.negative_prompt is not None else None,
        "num_inference_steps": first.steps,
        "guidance_scale": first.guidance,
        "num_images_per_prompt": 1,
        "generator": generators,
        "callback_on_step_end": on_step_end,
        "output_type": "pil",
        "width": first.width,
        "height": first.height,
    }
    return _accepted(pipe, candidates)


def _accepted(pipe: Any, candidates: dict[str, Any]) -> dict[str, Any]:
    accepted = call_parameters(type(pipe))
    return {key: value for key, value in candidates.items() if value is not None and key in accepted}


def check_denoising_steps(pipe: Any, arguments: dict[str, Any]) -> None:
    """img2img and inpaint run int(steps x strength) steps; zero would fail deep inside the pipeline."""
    parameters = call_parameters(type(pipe))
    if "strength" not in parameters:
        return
    steps = arguments.get("num_inference_steps", parameters["num_inference_steps"].default)
    strength = arguments.get("strength", parameters["strength"].default)
    if isinstance(steps, int) and isinstance(strength, float) and int(steps * strength) < 1:
        raise PermanentError(
            f"{steps} steps at strength {strength} leave no denoising step; raise steps or strength",
            code="invalid_request",
        )


_PARAMETERS_BY_CLASS: dict[type, Mapping[str, inspect.Parameter]] = {}


def call_parameters(pipe_class: type) -> Mapping[str, inspect.Parameter]:
    if pipe_class not in _PARAMETERS_BY_CLASS:
        _PARAMETERS_BY_CLASS[pipe_class] = inspect.signature(pipe_class.__call__).parameters
    return _PARAMETERS_BY_CLASS[pipe_class]


def fit(image: Image.Image, mode: str, size: tuple[int, int]) -> Image.Image:
    converted = image.convert(mode)
    if converted.size == size:
        return converted
    resample = Image.Resampling.NEAREST if mode == "L" else Image.Resampling.LANCZOS
    return converted.resize(size, resample)
