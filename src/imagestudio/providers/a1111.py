"""AUTOMATIC1111's stable-diffusion-webui, started with --api, as a provider.

Wire format (modules/api/api.py upstream): POST /sdapi/v1/txt2img and /sdapi/v1/img2img take the
processing parameters as JSON and answer {"images": [base64 PNG...], "parameters": {...},
"info": "<JSON string>"} only when the whole batch is done, so progress comes from polling
GET /sdapi/v1/progress while that request is in flight. POST /sdapi/v1/interrupt stops the running
job; the generation request then returns early with whatever it had, which we discard.
Upscaling goes through POST /sdapi/v1/extra-single-image. With --api-auth the server wants HTTP
basic auth on every route.

The progress and interrupt routes are server-wide: a server shared with other clients reports, and
stops, whatever job it is running. That is how the API is built; the adapter cannot do better
without the UI-internal task routes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Unpack

import httpx

from imagestudio.models.enums import GenerationType
from imagestudio.providers.base import (
    CancellationToken,
    GeneratedImage,
    GenerationCanceled,
    GenerationRequest,
    GenerationResult,
    PermanentError,
    ProgressCallback,
)
from imagestudio.providers.selfhosted import (
    DEFAULT_MODEL_ID,
    ProgressReporter,
    SamplingChoices,
    SelfHostedProvider,
    ServerOptions,
    json_or_none,
    malformed,
    raise_for_status,
)
from imagestudio.providers.wire import decode_base64_image, png_base64

SERVICE = "AUTOMATIC1111"
SUPPORTED_TYPES = frozenset(
    {
        GenerationType.text2img,
        GenerationType.img2img,
        GenerationType.inpaint,
        GenerationType.variation,
        GenerationType.upscale,
    }
)
# Parameters a caller may pass through GenerationRequest.extra for inpainting and sampling.
INPAINT_EXTRAS = ("inpainting_fill", "mask_blur", "inpaint_full_res", "inpaint_full_res_padding")


def _parse_auth(auth: str | None) -> httpx.BasicAuth | None:
    """--api-auth takes user:password; keep only the encoded header, never the raw strings."""
    if auth is None or auth == "":
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user:
        # The value is deliberately not echoed: it may be a password typed in the wrong field.
        raise ValueError("AUTOMATIC1111 auth must be given as user:password")
    return httpx.BasicAuth(user, password)


class A1111Provider(SelfHostedProvider):
    """Talks to one AUTOMATIC1111 server. Call `refresh()` once at startup to learn its checkpoints."""

    kind = "a1111"
    service = SERVICE
    url_setting = "IMAGESTUDIO_A1111_URL"
    url_hint = "a webui started with --api"
    default_model_label = "Checkpoint loaded on the server"
    models_path = "/sdapi/v1/sd-models"

    def __init__(
        self,
        base_url: str | None,
        *,
        auth: str | None = None,
        default_sampler: str = "Euler a",
        default_steps: int = 20,
        default_guidance: float = 7.0,
        upscaler: str = "Lanczos",
        interrupt_grace: float = 10.0,
        **options: Unpack[ServerOptions],
    ) -> None:
        basic_auth = _parse_auth(auth)
        super().__init__(base_url, credentials={"auth": basic_auth} if basic_auth is not None else None, **options)
        self._default_sampler = default_sampler
        self._default_steps = default_steps
        self._default_guidance = default_guidance
        self._upscaler = upscaler
        self._interrupt_grace = interrupt_grace

    # ---- contract ----

    def _offered_models(self, body: object) -> list[tuple[str, str]]:
        if not isinstance(body, list):
            raise malformed(SERVICE, "the model list was not a JSON array")
        offered: list[tuple[str, str]] = []
        for item in body:
            if not isinstance(item, dict) or not isinstance(item.get("model_name"), str):
                raise malformed(SERVICE, "a model entry had no model_name")
            title = item.get("title")
            offered.append((item["model_name"], title if isinstance(title, str) and title else item["model_name"]))
        return offered

    async def _list_choices(self) -> SamplingChoices:
        """GET /sdapi/v1/samplers, /schedulers (webui 1.9 and later; older ones answer 404) and
        /upscalers, each a JSON array of objects with a `name`."""
        return SamplingChoices(
            samplers=await self._names("/sdapi/v1/samplers", "list samplers"),
            schedulers=await self._names("/sdapi/v1/schedulers", "list schedulers", missing_ok=True),
            upscalers=await self._names("/sdapi/v1/upscalers", "list upscalers"),
        )

    async def _names(self, path: str, action: str, *, missing_ok: bool = False) -> tuple[str, ...]:
        response = await self._exchange("GET", path, action=action)
        if missing_ok and response.status_code == 404:
            return ()  # a server without the route: the choice stays unchecked
        raise_for_status(response, SERVICE, action)
        body = json_or_none(response, SERVICE, action)
        if not isinstance(body, list) or not all(
            isinstance(item, dict) and isinstance(item.get("name"), str) for item in body
        ):
            raise malformed(SERVICE, f"the answer to {path} was not a list of named entries")
        return tuple(item["name"] for item in body)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        self._require_base_url()
        cancel.raise_if_cancelled()
        if request.type == GenerationType.upscale:
            return await self._upscale(request, progress, cancel)
        path, payload = self._payload(request)
        tracker = _ProgressTracker(progress)
        job = asyncio.create_task(
            self._call("POST", path, action="generate", json=payload, time_limit=self._generation_timeout)
        )
        response = await self._follow(job, cancel, on_tick=tracker.poll_with(self._progress_snapshot))
        tracker.finish()
        return self._result(response, request)

    # ---- requests ----

    def _payload(self, request: GenerationRequest) -> tuple[str, dict]:
        payload: dict = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or "",
            "seed": request.seed if request.seed is not None else -1,
            "steps": request.steps or self._default_steps,
            "cfg_scale": request.guidance if request.guidance is not None else self._default_guidance,
            "width": request.width,
            "height": request.height,
            "batch_size": request.num_images,
            "n_iter": 1,
            "sampler_name": request.scheduler or self._default_sampler,
            "send_images": True,
            "save_images": False,
        }
        scheduler = request.extra.get("scheduler")
        if isinstance(scheduler, str) and scheduler:
            payload["scheduler"] = scheduler
        model = request.model or self._default_model
        if model != DEFAULT_MODEL_ID:
            payload["override_settings"] = {"sd_model_checkpoint": model}
            payload["override_settings_restore_afterwards"] = True
        if request.type == GenerationType.text2img:
            return "/sdapi/v1/txt2img", payload

        if request.init_image is None:
            raise PermanentError(f"{request.type} needs an init image")
        if request.type == GenerationType.variation:
            strength = request.strength if request.strength is not None else self._variation_strength
        else:
            strength = request.strength if request.strength is not None else 0.75
        payload.update(
            init_images=[png_base64(request.init_image)],
            denoising_strength=strength,
            resize_mode=0,
        )
        if request.type == GenerationType.inpaint:
            if request.mask_image is None:
                raise PermanentError("inpaint needs a mask image")
            # White marks the area to repaint, as the webui expects with inpainting_mask_invert=0.
            payload.update(
                mask=png_base64(request.mask_image, mode="L"),
                inpainting_mask_invert=0,
                inpainting_fill=1,
                mask_blur=4,
                inpaint_full_res=False,
                inpaint_full_res_padding=32,
            )
            for key in INPAINT_EXTRAS:
                if key in request.extra:
                    payload[key] = request.extra[key]
        return "/sdapi/v1/img2img", payload

    async def _upscale(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        if request.init_image is None:
            raise PermanentError("upscale needs a source image")
        payload = {
            "image": png_base64(request.init_image),
            "resize_mode": 0,
            "upscaling_resize": request.upscale_factor or 2,
            "upscaler_1": self._chosen_upscaler(request),
            "show_extras_results": True,
        }
        progress(0, 1)
        job = asyncio.create_task(
            self._call(
                "POST",
                "/sdapi/v1/extra-single-image",
                action="upscale",
                json=payload,
                time_limit=self._generation_timeout,
            )
        )
        response = await self._follow(job, cancel, on_tick=None)
        body = json_or_none(response, SERVICE, "upscale")
        if not isinstance(body, dict) or "image" not in body:
            raise malformed(SERVICE, "the upscale answer had no image")
        image = decode_base64_image(body["image"], source=SERVICE)
        progress(1, 1)
        return GenerationResult(
            images=[GeneratedImage(image=image, seed=None)],
            model=request.model,
            usage={"upscaler": payload["upscaler_1"]},
        )

    def _chosen_upscaler(self, request: GenerationRequest) -> str:
        chosen = request.extra.get("upscaler")
        return chosen if isinstance(chosen, str) and chosen else self._upscaler

    def _result(self, response: httpx.Response, request: GenerationRequest) -> GenerationResult:
        body = json_or_none(response, SERVICE, "generate")
        if not isinstance(body, dict) or not isinstance(body.get("images"), list):
            raise malformed(SERVICE, "the answer had no images list")
        info = _parse_info(body.get("info"))
        # With "return grid" on, a batch comes back with the grid first; info says where images start.
        first = info.get("index_of_first_image")
        first = first if isinstance(first, int) and first >= 0 else 0
        encoded = body["images"][first : first + request.num_images]
        if len(encoded) < request.num_images:
            raise malformed(SERVICE, f"asked for {request.num_images} images, got {len(encoded)}")
        seeds = info.get("all_seeds")
        seeds = seeds if isinstance(seeds, list) else []
        images = [
            GeneratedImage(
                image=decode_base64_image(data, source=SERVICE),
                seed=seeds[index] if index < len(seeds) and isinstance(seeds[index], int) else None,
            )
            for index, data in enumerate(encoded)
        ]
        usage = {key: info[key] for key in ("sampler_name", "steps", "cfg_scale") if key in info}
        return GenerationResult(images=images, model=request.model, usage=usage)

    # ---- following a job ----

    async def _follow(
        self,
        job: asyncio.Task[httpx.Response],
        cancel: CancellationToken,
        *,
        on_tick: Callable[[], Awaitable[None]] | None,
    ) -> httpx.Response:
        """Wait for the in-flight request, ticking progress and honouring cancellation meanwhile."""
        try:
            while True:
                done, _ = await asyncio.wait({job}, timeout=self._poll_interval)
                if job in done:
                    response = job.result()
                    # A cancel that raced the last step still wins: the engine discards partial work.
                    cancel.raise_if_cancelled()
                    return response
                if cancel.cancelled:
                    await self._interrupt_and_drain(job)
                    raise GenerationCanceled()
                if on_tick is not None:
                    await on_tick()
        except asyncio.CancelledError:
            # The engine gave up on us (shutdown, lease lost): stop the GPU work too.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._send_interrupt())
            raise
        finally:
            if not job.done():
                job.cancel()
                with contextlib.suppress(BaseException):
                    await job

    async def _interrupt_and_drain(self, job: asyncio.Task[httpx.Response]) -> None:
        await self._send_interrupt()
        # The webui answers the interrupted request with its partial batch; wait for it briefly so the
        # connection is not torn down mid-response, then drop whatever it was.
        done, _ = await asyncio.wait({job}, timeout=self._interrupt_grace)
        if job in done and not job.cancelled():
            job.exception()  # mark retrieved; a failure after an interrupt is expected and irrelevant

    async def _send_interrupt(self) -> None:
        # Best effort: the cancel stands even if the server is gone.
        await self._best_effort("POST", "/sdapi/v1/interrupt", action="interrupt")

    async def _progress_snapshot(self) -> tuple[int, int] | None:
        """(step, total) across the batch from GET /sdapi/v1/progress, or None if nothing useful."""
        try:
            response = await self._call(
                "GET",
                "/sdapi/v1/progress",
                action="report progress",
                params={"skip_current_image": "true"},
                time_limit=min(self._request_timeout, 10.0),
            )
            body = response.json()
        except Exception:
            return None  # progress is a courtesy; a hiccup here must not fail the generation
        state = body.get("state") if isinstance(body, dict) else None
        if not isinstance(state, dict):
            return None
        job_count, job_no = state.get("job_count"), state.get("job_no")
        step, steps = state.get("sampling_step"), state.get("sampling_steps")
        if not all(isinstance(v, int) for v in (job_count, job_no, step, steps)):
            return None
        if job_count <= 0 or steps <= 0:
            return None
        total = job_count * steps
        done = min(job_no, job_count - 1) * steps + min(step, steps)
        return min(done, total), total

    def _types(self) -> frozenset[GenerationType]:
        return SUPPORTED_TYPES


def _parse_info(raw: object) -> dict:
    """info is a JSON document inside a string; a missing or broken one only costs us the seeds."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str):
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class _ProgressTracker(ProgressReporter):
    """Polls the server's counters, forwarding them only when they move forward."""

    def poll_with(self, snapshot: Callable[[], Awaitable[tuple[int, int] | None]]) -> Callable[[], Awaitable[None]]:
        async def tick() -> None:
            current = await snapshot()
            if current is None or current == self.last:
                return
            if self.last is not None and current[1] == self.last[1] and current[0] < self.last[0]:
                return  # the server moved on to a later job's counters; never report going backwards
            self.report(*current)

        return tick
