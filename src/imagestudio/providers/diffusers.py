"""Local diffusion through Hugging Face diffusers: Stable Diffusion 1.5/2.x, SDXL, SD3 and Flux.

Weights are read only from disk (a pipeline folder, or a hub id already in the local Hugging Face
cache); nothing is ever fetched. Loaded pipelines stay warm in a small LRU cache; img2img and inpaint
pipes are derived from the text2img one with ``from_pipe`` so they share its weights.

torch and diffusers are imported lazily: the studio imports this module without the ``diffusers``
extra installed, and ``configuration_problem()`` explains what to install.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import logging
import re
import secrets
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import anyio
from PIL import Image

from imagestudio.models.enums import GenerationType
from imagestudio.models.limits import SEED_DRAW_BOUND
from imagestudio.providers.base import (
    CancellationToken,
    ContentRejectedError,
    GeneratedImage,
    GenerationCanceled,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    NotConfiguredError,
    PermanentError,
    ProgressCallback,
    ProviderCapabilities,
    RetriableError,
)
from imagestudio.providers.batching import Batch, Batcher
from imagestudio.providers.diffusers_calls import (
    BatchKey,
    batch_call_arguments,
    batch_step_callback,
    call_arguments,
    check_denoising_steps,
    step_callback,
)
from imagestudio.providers.wire import ensure_servable

logger = logging.getLogger(__name__)

# Python packages the provider needs at generation time (the ``diffusers`` extra).
REQUIRED_PACKAGES: tuple[str, ...] = ("torch", "diffusers", "transformers")
INSTALL_HINT = "install imagestudio[diffusers]"

SUPPORTED_TYPES = frozenset({GenerationType.text2img, GenerationType.img2img, GenerationType.inpaint})
# Types whose generations may share a pipeline call with others (img2img and inpaint run alone).
BATCHED_TYPES = frozenset({GenerationType.text2img})
DEFAULT_BATCH_SIZE = 4
DEFAULT_BATCH_WAIT_MS = 20.0

# Scheduler names accepted in GenerationRequest.scheduler -> (diffusers class name, extra config).
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "heun": ("HeunDiscreteScheduler", {}),
    "lms": ("LMSDiscreteScheduler", {}),
    "ddim": ("DDIMScheduler", {}),
    "pndm": ("PNDMScheduler", {}),
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {}),
    "dpmpp_2m_karras": ("DPMSolverMultistepScheduler", {"use_karras_sigmas": True}),
    "unipc": ("UniPCMultistepScheduler", {}),
    "flow_euler": ("FlowMatchEulerDiscreteScheduler", {}),
}

_DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}

# Seeds stay within what every backend and the database column can hold.
_MAX_SEED = 2**63 - 1
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_OOM_RETRY_AFTER = 10.0


def discover_pipelines(folders: Sequence[Path]) -> dict[str, str]:
    """Model id (the folder's name) -> path, for every diffusers pipeline folder (one holding a
    model_index.json) directly inside the given folders; the first folder wins a name clash.
    A folder that is missing or unreadable is skipped with a warning."""
    found: dict[str, str] = {}
    for folder in folders:
        try:
            children = sorted(child for child in folder.iterdir() if child.is_dir())
        except OSError as exc:
            logger.warning("diffusers model folder %s cannot be read: %s", folder, exc.strerror or exc)
            continue
        for child in children:
            if (child / "model_index.json").is_file():
                found.setdefault(child.name, str(child))
    return found


class ModelFamily(StrEnum):
    sd = "sd"  # Stable Diffusion 1.x / 2.x
    sdxl = "sdxl"
    sd3 = "sd3"
    flux = "flux"
    other = "other"


def missing_packages() -> list[str]:
    """The required packages that are not importable, without importing them."""
    return [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]


def normalize_scheduler_name(name: str) -> str:
    """'DPM++ 2M Karras' -> 'dpmpp_2m_karras'; 'Euler-A' -> 'euler_a'."""
    return re.sub(r"[\s-]+", "_", name.strip().lower().replace("++", "pp"))


def family_from_class_name(class_name: str) -> ModelFamily:
    if "Flux" in class_name:
        return ModelFamily.flux
    if "StableDiffusion3" in class_name:
        return ModelFamily.sd3
    if "StableDiffusionXL" in class_name:
        return ModelFamily.sdxl
    if "StableDiffusion" in class_name:
        return ModelFamily.sd
    return ModelFamily.other


def default_device(torch: Any) -> str:
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def default_dtype(device: str, family: ModelFamily) -> str:
    """Half precision where the hardware is built for it; float32 on CPU, where half is slow or missing."""
    if device.startswith("cuda"):
        # Flux and SD3 were trained in bfloat16 and overflow in float16.
        return "bfloat16" if family in (ModelFamily.flux, ModelFamily.sd3) else "float16"
    if device == "mps":
        return "float16"
    return "float32"


def _canonical_dtype(name: str | None) -> str | None:
    if name is None:
        return None
    canonical = _DTYPE_ALIASES.get(name.strip().lower())
    if canonical is None:
        choices = ", ".join(sorted(set(_DTYPE_ALIASES.values())))
        raise ValueError(f"unknown dtype {name!r}; use one of {choices}")
    return canonical


@dataclass
class _LoadedModel:
    """One model's pipelines. The lock covers all of them: derived pipes share modules and scheduler."""

    model_id: str
    family: ModelFamily
    device: str
    dtype: str
    pipes: dict[GenerationType, Any]
    default_scheduler: Any
    schedulers: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ModelMissing(Exception):
    """A configured model whose files are not on disk; the message is for the operator."""


class DiffusersProvider:
    name = "diffusers"
    kind = "diffusers"

    def __init__(
        self,
        models: Mapping[str, str],
        *,
        device: str | None = None,
        dtype: str | None = None,
        cache_size: int = 2,
        model_dirs: Sequence[str | Path] = (),
        batch_size: int = DEFAULT_BATCH_SIZE,
        batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    ) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if batch_wait_ms < 0:
            raise ValueError("batch_wait_ms must not be negative")
        # Models named in the settings, then the pipeline folders found in `model_dirs` (refresh()).
        self._configured = dict(models)
        self._model_dirs = tuple(Path(folder).expanduser() for folder in model_dirs)
        self._models = {**discover_pipelines(self._model_dirs), **self._configured}
        self._device_override = device.strip() if device else None
        self._dtype_override = _canonical_dtype(dtype)
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _LoadedModel] = OrderedDict()
        self._cache_lock = threading.Lock()
        # One load at a time: loads are rare and two at once could exhaust memory.
        self._load_lock = threading.Lock()
        self.load_count = 0
        # Compatible text2img generations share one pipeline call, up to batch_size images.
        self.batch_size = batch_size
        self._batcher = Batcher(
            self._run_batch, max_images=batch_size, wait_seconds=batch_wait_ms / 1000, name="diffusers-batch"
        )

    # ---- contract ----

    def capabilities(self) -> ProviderCapabilities:
        models = tuple(
            ModelInfo(id=model_id, label=model_id, types=SUPPORTED_TYPES) for model_id in self._models
        )
        return ProviderCapabilities(
            types=SUPPORTED_TYPES,
            models=models,
            default_model=next(iter(self._models), ""),
            size_multiple=8,
            upscale_factors=(),
            honours_seed=True,
            honours_negative_prompt=True,
            honours_strength=True,
            supports_mask=True,
        )

    # Its models are folders on this machine: looked for even while it cannot run yet (none found so far).
    lists_models_locally = True

    @property
    def lists_models(self) -> bool:
        """Whether there are folders to look for pipelines in (the registry refreshes only those)."""
        return bool(self._model_dirs)

    async def refresh(self) -> tuple[ModelInfo, ...]:
        """Look again for pipeline folders in the model folders (one level down, by model_index.json)."""
        found = await anyio.to_thread.run_sync(discover_pipelines, self._model_dirs)
        self._models = {**found, **self._configured}
        return self.capabilities().models

    def configuration_problem(self) -> str | None:
        missing = missing_packages()
        if missing:
            return f"local diffusion needs {', '.join(missing)}: {INSTALL_HINT}"
        if not self._models and self._model_dirs:
            folders = ", ".join(str(folder) for folder in self._model_dirs)
            return f"no diffusers pipeline folders (with a model_index.json) found in {folders}"
        if not self._models:
            return "no local diffusion models are configured"
        problems = []
        for model_id in self._models:
            try:
                self._resolve_folder(model_id)
            except _ModelMissing as exc:
                problems.append(str(exc))
        if problems:
            return "; ".join(problems)
        return self._device_problem()

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        self._validate(request)
        cancel.raise_if_cancelled()
        # Set when the awaiting task is cancelled, so the worker thread stops at its next step.
        abandoned = threading.Event()
        batched = self.batch_size > 1 and request.type in BATCHED_TYPES and request.num_images < self.batch_size
        work = self._generate_batched if batched else self._generate_blocking
        try:
            return await anyio.to_thread.run_sync(work, request, progress, cancel, abandoned, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            abandoned.set()
            raise

    async def aclose(self) -> None:
        with self._cache_lock:
            self._cache.clear()
        _free_memory()

    # ---- for operators, benchmarks and tests ----

    async def preload(self, model_id: str | None = None) -> None:
        """Load a model (the default one when None) into the warm cache, e.g. when a worker starts."""
        wanted = model_id or self.capabilities().default_model
        if wanted not in self._models:
            raise NotConfiguredError(f"model {wanted!r} is not configured")
        await anyio.to_thread.run_sync(self._loaded, wanted)

    def loaded_models(self) -> list[str]:
        """Model ids currently warm, least recently used first."""
        with self._cache_lock:
            return list(self._cache)

    # ---- validation ----

    def _validate(self, request: GenerationRequest) -> None:
        ensure_servable(self.capabilities(), request, code="invalid_request")
        if request.steps is not None and not 1 <= request.steps <= 500:
            raise PermanentError("steps must be between 1 and 500", code="invalid_request")
        if request.guidance is not None and not 0 <= request.guidance <= 50:
            raise PermanentError("guidance must be between 0 and 50", code="invalid_request")
        if request.strength is not None and not 0 < request.strength <= 1:
            raise PermanentError("strength must be greater than 0 and at most 1", code="invalid_request")
        highest_seed = _MAX_SEED - request.num_images
        if request.seed is not None and not 0 <= request.seed <= highest_seed:
            raise PermanentError(f"seed must be between 0 and {highest_seed}", code="invalid_request")
        if request.scheduler is not None and normalize_scheduler_name(request.scheduler) not in SCHEDULERS:
            known = ", ".join(SCHEDULERS)
            raise PermanentError(
                f"unknown scheduler {request.scheduler!r}; available: {known}", code="invalid_request"
            )

    # ---- model files ----

    def _resolve_folder(self, model_id: str) -> Path:
        """The folder holding model_id's pipeline, from a path or the local Hugging Face cache."""
        location = self._models.get(model_id)
        if location is None:
            raise _ModelMissing(f"model {model_id!r} is not configured")
        folder = Path(location).expanduser()
        if folder.is_dir():
            pass
        elif _HUB_ID.match(location) and not folder.is_absolute():
            folder = self._cached_snapshot(model_id, location)
        else:
            raise _ModelMissing(f"model {model_id!r}: folder {location} does not exist")
        if not (folder / "model_index.json").is_file():
            raise _ModelMissing(
                f"model {model_id!r}: {location} is not a diffusers pipeline folder (no model_index.json)"
            )
        return folder

    @staticmethod
    def _cached_snapshot(model_id: str, repo_id: str) -> Path:
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(repo_id, local_files_only=True))
        except Exception:
            # Not cached (or cached partially): downloading is the operator's call, never ours.
            raise _ModelMissing(
                f"model {model_id!r}: {repo_id} is neither a folder nor in the local Hugging Face cache"
            ) from None

    def _device_problem(self) -> str | None:
        wanted = self._device_override
        if wanted is None or wanted == "cpu":
            return None
        import torch

        if wanted.startswith("cuda") and not torch.cuda.is_available():
            return f"device {wanted} was requested but CUDA is not available"
        if wanted == "mps" and not torch.backends.mps.is_available():
            return "device mps was requested but MPS is not available"
        return None

    # ---- the warm cache ----

    def _loaded(self, model_id: str) -> _LoadedModel:
        with self._cache_lock:
            if model_id in self._cache:
                self._cache.move_to_end(model_id)
                return self._cache[model_id]
        with self._load_lock:
            with self._cache_lock:
                if model_id in self._cache:  # loaded by another thread while we waited
                    self._cache.move_to_end(model_id)
                    return self._cache[model_id]
                evicted = self._evict(keep=self._cache_size - 1)
            if evicted:
                _free_memory()  # make room before reading new weights
            loaded = self._load(model_id)
            with self._cache_lock:
                self._cache[model_id] = loaded
                self._evict(keep=self._cache_size)
            return loaded

    def _evict(self, *, keep: int) -> list[str]:
        """Drop least recently used models beyond keep. A generation still running keeps its own reference."""
        evicted = []
        while len(self._cache) > keep:
            model_id, _ = self._cache.popitem(last=False)
            evicted.append(model_id)
        return evicted

    def _load(self, model_id: str) -> _LoadedModel:
        try:
            folder = self._resolve_folder(model_id)
        except _ModelMissing as exc:
            raise NotConfiguredError(str(exc)) from None
        family = self._read_family(model_id, folder)
        torch, diffusers = _import_backends()
        device = self._device_override or default_device(torch)
        dtype = self._dtype_override or default_dtype(device, family)
        started = time.perf_counter()
        try:
            pipe = diffusers.AutoPipelineForText2Image.from_pretrained(
                str(folder), local_files_only=True, **{_dtype_keyword(): getattr(torch, dtype)}
            )
            pipe.to(device)
        except Exception as exc:
            if _is_out_of_memory(torch, exc):
                raise _out_of_memory(f"not enough memory to load model {model_id!r}") from None
            # The operator's log gets the details; the error (shown to users) gets no paths.
            logger.warning("loading model %r from %s failed", model_id, folder, exc_info=True)
            raise PermanentError(
                f"model {model_id!r} could not be loaded: its files are incomplete, corrupt "
                "or not a supported diffusers pipeline",
                code="model_load_failed",
            ) from None
        pipe.set_progress_bar_config(disable=True)
        self.load_count += 1
        logger.info(
            "loaded model %r (%s) on %s as %s in %.1fs",
            model_id,
            family,
            device,
            dtype,
            time.perf_counter() - started,
        )
        return _LoadedModel(
            model_id=model_id,
            family=family,
            device=device,
            dtype=dtype,
            pipes={GenerationType.text2img: pipe},
            default_scheduler=pipe.scheduler,
        )

    @staticmethod
    def _read_family(model_id: str, folder: Path) -> ModelFamily:
        try:
            index = json.loads((folder / "model_index.json").read_text(encoding="utf-8"))
            class_name = index["_class_name"]
        except (OSError, ValueError, KeyError, TypeError):
            raise PermanentError(
                f"model {model_id!r} has an unreadable model_index.json", code="model_load_failed"
            ) from None
        return family_from_class_name(str(class_name))

    @staticmethod
    def _pipe_for(loaded: _LoadedModel, generation_type: GenerationType) -> Any:
        """The pipe for a generation type, derived once from the text2img pipe so no weights are reloaded."""
        pipe = loaded.pipes.get(generation_type)
        if pipe is not None:
            return pipe
        _, diffusers = _import_backends()
        auto_class = {
            GenerationType.img2img: diffusers.AutoPipelineForImage2Image,
            GenerationType.inpaint: diffusers.AutoPipelineForInpainting,
        }[generation_type]
        base = loaded.pipes[GenerationType.text2img]
        try:
            pipe = auto_class.from_pipe(base)
        except ValueError:
            raise PermanentError(
                f"model {loaded.model_id!r} has no {generation_type} pipeline", code="unsupported_type"
            ) from None
        pipe.set_progress_bar_config(disable=True)
        loaded.pipes[generation_type] = pipe
        return pipe

    @staticmethod
    def _scheduler_for(loaded: _LoadedModel, name: str | None) -> Any:
        if name is None:
            return loaded.default_scheduler
        key = normalize_scheduler_name(name)
        if key in loaded.schedulers:
            return loaded.schedulers[key]
        class_name, extra = SCHEDULERS[key]
        compatible = {cls.__name__ for cls in loaded.default_scheduler.compatibles}
        if class_name not in compatible:
            raise PermanentError(
                f"scheduler {name!r} does not work with model {loaded.model_id!r}", code="invalid_request"
            )
        _, diffusers = _import_backends()
        scheduler_class = getattr(diffusers, class_name)
        scheduler = scheduler_class.from_config(loaded.default_scheduler.config, **extra)
        loaded.schedulers[key] = scheduler
        return scheduler

    # ---- one generation, in a worker thread ----

    def _generate_blocking(
        self,
        request: GenerationRequest,
        progress: ProgressCallback,
        cancel: CancellationToken,
        abandoned: threading.Event,
    ) -> GenerationResult:
        torch, _ = _import_backends()
        loaded = self._loaded(request.model)

        def stop_requested() -> bool:
            return cancel.cancelled or abandoned.is_set()

        # Wait for the model's lock without becoming deaf to a cancel.
        while not loaded.lock.acquire(timeout=0.05):
            if stop_requested():
                raise GenerationCanceled()
        try:
            if stop_requested():
                raise GenerationCanceled()
            pipe = self._prepared_pipe(loaded, request)
            seeds = _seeds_for(request)
            # CPU generators give the same noise for a seed on every device.
            generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in seeds]
            on_step_end = step_callback(progress, stop_requested, request.steps, request.previews)
            arguments = call_arguments(pipe, request, generators, on_step_end)
            check_denoising_steps(pipe, arguments)
            output, usage = self._timed_call(torch, loaded, pipe, arguments)
        finally:
            loaded.lock.release()
        if stop_requested():
            raise GenerationCanceled()  # partial results are discarded
        flagged = getattr(output, "nsfw_content_detected", None) or []
        return _result_for(request, output.images, flagged, seeds, usage)

    def _prepared_pipe(self, loaded: _LoadedModel, request: GenerationRequest) -> Any:
        pipe = self._pipe_for(loaded, request.type)
        pipe.scheduler = self._scheduler_for(loaded, request.scheduler)
        return pipe

    def _timed_call(
        self, torch: Any, loaded: _LoadedModel, pipe: Any, arguments: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        started = time.perf_counter()
        output = self._run_pipe(torch, loaded, pipe, arguments)
        usage = {
            "device": loaded.device,
            "dtype": loaded.dtype,
            "steps": getattr(pipe, "_num_timesteps", None),
            "scheduler": type(pipe.scheduler).__name__,
            "seconds": round(time.perf_counter() - started, 3),
        }
        return output, usage

    # ---- generations sharing one pipeline call ----

    def _generate_batched(
        self,
        request: GenerationRequest,
        progress: ProgressCallback,
        cancel: CancellationToken,
        abandoned: threading.Event,
    ) -> GenerationResult:
        """Join the open batch of compatible generations and wait for this one's share of its call."""

        def stop_requested() -> bool:
            return cancel.cancelled or abandoned.is_set()

        batch, member = self._batcher.join(_batch_key(request), request, progress, stop_requested)
        result = member.wait(batch)
        if stop_requested():
            raise GenerationCanceled()  # partial results are discarded
        return result

    def _run_batch(self, batch: Batch) -> None:
        """On the batch's own thread: once the model is free, render the members still wanted in one
        call and settle each. An error of the call as a whole reaches every member (the batcher)."""
        torch, _ = _import_backends()
        key: BatchKey = batch.key
        loaded = self._loaded(key.model)
        # The batch keeps taking members until the model is free; it is given up if all cancel.
        while not loaded.lock.acquire(timeout=0.05):
            if batch.abandoned:
                return
        try:
            members = batch.close()
            if not members:
                return
            first = members[0].request
            pipe = self._prepared_pipe(loaded, first)
            seeds = [_seeds_for(member.request) for member in members]
            # One CPU generator per image, seeded as if its generation ran alone: image k of the call
            # starts from the same noise (and, for ancestral samplers, draws the same noise per step).
            generators = [torch.Generator(device="cpu").manual_seed(seed) for group in seeds for seed in group]
            on_step_end = batch_step_callback(members, key.steps)
            if len(members) == 1:
                arguments = call_arguments(pipe, first, generators, on_step_end)
            else:
                requests = [member.request for member in members]
                arguments = batch_call_arguments(pipe, requests, generators, on_step_end)
            output, usage = self._timed_call(torch, loaded, pipe, arguments)
        finally:
            loaded.lock.release()
        usage["batch_images"] = len(generators)
        flagged = getattr(output, "nsfw_content_detected", None) or []
        first_row = 0
        for member, member_seeds in zip(members, seeds, strict=True):
            rows = slice(first_row, first_row + len(member_seeds))
            first_row = rows.stop
            try:
                member.finish(_result_for(member.request, output.images[rows], flagged[rows], member_seeds, usage))
            except ContentRejectedError as error:  # only the generation whose images were flagged
                member.fail(error)

    @staticmethod
    def _run_pipe(torch: Any, loaded: _LoadedModel, pipe: Any, arguments: dict[str, Any]) -> Any:
        try:
            return pipe(**arguments)
        except GenerationCanceled:
            raise
        except Exception as exc:
            if _is_out_of_memory(torch, exc):
                raise _out_of_memory(
                    f"model {loaded.model_id!r} ran out of memory; try fewer images or a smaller size"
                ) from None
            if isinstance(exc, ValueError | TypeError):
                # diffusers rejects unusable parameters (e.g. too few steps after strength) with these.
                raise PermanentError(str(exc), code="invalid_request") from None
            logger.exception("local diffusion with model %r failed", loaded.model_id)
            raise PermanentError(
                f"local diffusion with model {loaded.model_id!r} failed ({type(exc).__name__})"
            ) from None


def _seeds_for(request: GenerationRequest) -> list[int]:
    first_seed = request.seed if request.seed is not None else secrets.randbelow(SEED_DRAW_BOUND)
    return [first_seed + index for index in range(request.num_images)]


def _batch_key(request: GenerationRequest) -> BatchKey:
    scheduler = normalize_scheduler_name(request.scheduler) if request.scheduler else None
    return BatchKey(
        model=request.model,
        type=request.type,
        width=request.width,
        height=request.height,
        steps=request.steps,
        guidance=request.guidance,
        scheduler=scheduler,
        negative=request.negative_prompt is not None,
    )


def _result_for(
    request: GenerationRequest, images: Sequence[Image.Image], flagged: Sequence[bool], seeds: list[int], usage: dict
) -> GenerationResult:
    if any(flagged):
        raise ContentRejectedError(
            f"the model's safety checker flagged {sum(map(bool, flagged))} of {len(flagged)} images"
        )
    generated = [GeneratedImage(image=image, seed=seed) for image, seed in zip(images, seeds, strict=True)]
    return GenerationResult(images=generated, model=request.model, usage=dict(usage))


def _import_backends() -> tuple[Any, Any]:
    try:
        import diffusers
        import torch
    except ImportError as exc:
        raise NotConfiguredError(f"local diffusion needs {exc.name}: {INSTALL_HINT}") from None
    return torch, diffusers


def _dtype_keyword() -> str:
    """diffusers renamed from_pretrained's torch_dtype to dtype; older releases know only torch_dtype."""
    try:
        from diffusers.utils import deprecation_utils
    except ImportError:
        return "torch_dtype"
    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


def _is_out_of_memory(torch: Any, exc: BaseException) -> bool:
    oom_types = tuple(
        t
        for t in (getattr(torch, "OutOfMemoryError", None), getattr(torch.cuda, "OutOfMemoryError", None))
        if isinstance(t, type)
    )
    if oom_types and isinstance(exc, oom_types):
        return True
    # MPS and some CUDA paths raise a plain RuntimeError.
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _out_of_memory(message: str) -> RetriableError:
    """Free what the failed attempt held, and say it may work later (when other work has finished)."""
    _free_memory()
    return RetriableError(message, retry_after=_OOM_RETRY_AFTER, code="out_of_memory")


def _free_memory() -> None:
    gc.collect()
    torch = _loaded_module("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _loaded_module(name: str) -> Any:
    """A module only if something already imported it; freeing memory must not import torch."""
    return sys.modules.get(name)
