"""A fake AUTOMATIC1111 webui API speaking the real wire format (modules/api/api.py upstream).

Routes: POST /sdapi/v1/txt2img, /sdapi/v1/img2img, /sdapi/v1/extra-single-image,
/sdapi/v1/interrupt; GET /sdapi/v1/progress, /sdapi/v1/sd-models, /sdapi/v1/samplers
([{name, aliases, options}]), /sdapi/v1/schedulers ([{name, label, aliases, default_rho,
need_inner_model}], webui 1.9 and later; `schedulers_route = False` plays an older server's 404) and
/sdapi/v1/upscalers ([{name, model_name, model_path, model_url, scale}]), as modules/api/models.py
upstream declares them. With credentials set it demands
HTTP basic auth like --api-auth. Errors come back in the webui's shape
({"error", "detail", "body", "errors"}, or FastAPI's {"detail": [...]} for validation), including
the webui's own quirks (an undecodable init image is a 500; an unknown sampler a 404).

Generation really runs over a few steps, so progress can be polled and an interrupt really stops
it; images are real PNGs drawn from the request (size, seed, init image, mask).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import random
import secrets
import time
from dataclasses import dataclass

from PIL import Image, ImageDraw, PngImagePlugin
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import Injections

DEFAULT_MODELS = (
    {
        "title": "v1-5-pruned-emaonly.safetensors [6ce0161689]",
        "model_name": "v1-5-pruned-emaonly",
        "hash": "6ce0161689",
        "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
        "filename": "/webui/models/Stable-diffusion/v1-5-pruned-emaonly.safetensors",
        "config": None,
    },
    {
        "title": "sd_xl_base_1.0.safetensors [31e35c80fc]",
        "model_name": "sd_xl_base_1.0",
        "hash": "31e35c80fc",
        "sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6120b893f7e5b",
        "filename": "/webui/models/Stable-diffusion/sd_xl_base_1.0.safetensors",
        "config": None,
    },
)
SAMPLERS = ("Euler a", "Euler", "DPM++ 2M", "DPM++ SDE", "DDIM", "UniPC")
SAMPLER_ALIASES = {"Euler a": ["k_euler_a", "k_euler_ancestral"], "Euler": ["k_euler"], "DPM++ 2M": ["k_dpmpp_2m"]}
SCHEDULERS = ("automatic", "uniform", "karras", "exponential")
SCHEDULER_LABELS = {"automatic": "Automatic", "uniform": "Uniform", "karras": "Karras", "exponential": "Exponential"}
UPSCALERS = ("None", "Lanczos", "Nearest", "R-ESRGAN 4x+")

# Field -> accepted JSON types, as the webui's generated pydantic models would coerce them.
NUMBER = (int, float)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "prompt": (str,),
    "negative_prompt": (str,),
    "seed": (int,),
    "steps": (int,),
    "cfg_scale": NUMBER,
    "width": (int,),
    "height": (int,),
    "batch_size": (int,),
    "n_iter": (int,),
    "sampler_name": (str,),
    "scheduler": (str,),
    "denoising_strength": NUMBER,
    "init_images": (list,),
    "mask": (str,),
    "override_settings": (dict,),
    "override_settings_restore_afterwards": (bool,),
    "inpainting_fill": (int,),
    "mask_blur": (int,),
    "inpaint_full_res": (bool, int),
    "inpaint_full_res_padding": (int,),
    "inpainting_mask_invert": (int,),
    "resize_mode": (int,),
    "send_images": (bool,),
    "save_images": (bool,),
}


@dataclass
class Job:
    """One generation as the fake ran it: tests read how far it got and whether it was stopped."""

    path: str
    steps_total: int
    steps_done: int = 0
    interrupted: bool = False
    finished: bool = False


def _error(
    status: int,
    detail: str,
    *,
    error: str = "HTTPException",
    errors: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = {"error": error, "detail": detail, "body": "", "errors": errors or f"{status}: {detail}"}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_error(field_name: str, value: object, expected: str) -> JSONResponse:
    return JSONResponse(
        {
            "detail": [
                {
                    "type": f"{expected}_type",
                    "loc": ["body", field_name],
                    "msg": f"Input should be a valid {expected}",
                    "input": value,
                }
            ]
        },
        status_code=422,
    )


def _decode_b64_image(encoding: str) -> Image.Image | None:
    if encoding.startswith("data:image/"):
        encoding = encoding.split(";")[1].split(",")[1]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(encoding, validate=True)))
        image.load()
    except (binascii.Error, ValueError, OSError):
        return None
    return image


def _encode_png(image: Image.Image, infotext: str | None = None) -> str:
    buffer = io.BytesIO()
    pnginfo = None
    if infotext is not None:
        pnginfo = PngImagePlugin.PngInfo()
        pnginfo.add_text("parameters", infotext)
    image.save(buffer, format="PNG", pnginfo=pnginfo)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def seed_colour(seed: int) -> tuple[int, int, int]:
    """The colour the fake paints for a seed: same seed, same pixels, like a real sampler."""
    rng = random.Random(seed)
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


def render(
    width: int,
    height: int,
    seed: int,
    prompt: str,
    *,
    init: Image.Image | None = None,
    mask: Image.Image | None = None,
    strength: float = 1.0,
) -> Image.Image:
    """An image that reflects the request: its size, its seed, its init image and mask."""
    canvas = Image.new("RGB", (width, height), seed_colour(seed))
    ImageDraw.Draw(canvas).text((4, 4), prompt[:40], fill=(255, 255, 255))
    if init is None:
        return canvas
    base = init.convert("RGB").resize((width, height))
    blended = Image.blend(base, canvas, max(0.0, min(1.0, strength)))
    if mask is None:
        return blended
    # White in the mask is repainted; black keeps the init image, as with inpainting_mask_invert=0.
    return Image.composite(blended, base, mask.convert("L").resize((width, height)))


class FakeA1111:
    """The fake server's state and ASGI app; one instance may serve many tests via reset()."""

    def __init__(self, *, credentials: str | None = None, step_delay: float = 0.02) -> None:
        self.credentials = credentials
        self.step_delay = step_delay
        self.app = Starlette(
            routes=[
                Route("/sdapi/v1/txt2img", self._txt2img, methods=["POST"]),
                Route("/sdapi/v1/img2img", self._img2img, methods=["POST"]),
                Route("/sdapi/v1/extra-single-image", self._extra_single_image, methods=["POST"]),
                Route("/sdapi/v1/progress", self._progress, methods=["GET"]),
                Route("/sdapi/v1/interrupt", self._interrupt, methods=["POST"]),
                Route("/sdapi/v1/sd-models", self._sd_models, methods=["GET"]),
                Route("/sdapi/v1/samplers", self._samplers, methods=["GET"]),
                Route("/sdapi/v1/schedulers", self._schedulers, methods=["GET"]),
                Route("/sdapi/v1/upscalers", self._upscalers, methods=["GET"]),
            ]
        )
        self.injections = Injections()
        self.reset()

    # ---- test controls ----

    def reset(self) -> None:
        self.models: list[dict] = [dict(m) for m in DEFAULT_MODELS]
        # False: a webui older than 1.9, which has no /sdapi/v1/schedulers (FastAPI's 404).
        self.schedulers_route = True
        self.received: list[tuple[str, dict]] = []
        self.progress_polls = 0
        self.interrupts = 0
        self.auth_failures = 0
        self.jobs: list[Job] = []
        self.injections.clear()
        self._state = self._idle_state()
        self._interrupted = False
        self._time_start = 0.0

    def fail_next(
        self,
        path: str,
        status: int,
        *,
        body: object = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` calls to `path` with this status (a webui-shaped body by default)."""
        if body is None:
            body = {"error": "RuntimeError", "detail": "", "body": "", "errors": f"fake failure {status}"}
        self.injections.fail_next(path, status, body, headers=headers, times=times)

    def malformed_next(self, path: str, raw: bytes, *, content_type: str = "application/json") -> None:
        """Answer the next call to `path` with 200 and this raw body."""
        self.injections.malformed_next(path, raw, content_type=content_type)

    def slow_next(self, path: str, seconds: float) -> None:
        """Hold the next call to `path` for `seconds` before handling it normally."""
        self.injections.slow_next(path, seconds)

    def bodies(self, path: str) -> list[dict]:
        return [body for p, body in self.received if p == path]

    @property
    def current_job(self) -> Job | None:
        return self.jobs[-1] if self.jobs else None

    # ---- plumbing ----

    async def _gate(self, request: Request) -> Response | None:
        """Auth first (like the webui's route dependency), then any injected answer for this path."""
        if self.credentials is not None:
            header = request.headers.get("authorization", "")
            scheme, _, encoded = header.partition(" ")
            try:
                given = base64.b64decode(encoded, validate=True).decode() if scheme.lower() == "basic" else None
            except (binascii.Error, ValueError):
                given = None
            if given is None:
                self.auth_failures += 1
                return _error(401, "Not authenticated", headers={"WWW-Authenticate": "Basic"})
            user, _, password = given.partition(":")
            want_user, _, want_password = self.credentials.partition(":")
            if not (secrets.compare_digest(user, want_user) and secrets.compare_digest(password, want_password)):
                self.auth_failures += 1
                return _error(401, "Incorrect username or password", headers={"WWW-Authenticate": "Basic"})
        return await self.injections.answer(request.url.path)

    async def _json(self, request: Request) -> dict | Response:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse(
                {"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error", "input": {}}]},
                status_code=422,
            )
        if not isinstance(body, dict):
            return JSONResponse(
                {
                    "detail": [
                        {
                            "type": "model_attributes_type",
                            "loc": ["body"],
                            "msg": "Input should be a valid dictionary",
                            "input": body,
                        }
                    ]
                },
                status_code=422,
            )
        for name, value in body.items():
            expected = FIELD_TYPES.get(name)
            if expected is None or value is None:
                continue
            if isinstance(value, bool) and bool not in expected:
                return _validation_error(name, value, expected[0].__name__)
            if not isinstance(value, expected):
                return _validation_error(name, value, expected[0].__name__)
        return body

    @staticmethod
    def _idle_state() -> dict:
        return {
            "skipped": False,
            "interrupted": False,
            "stopping_generation": False,
            "job": "",
            "job_count": 0,
            "job_timestamp": "0",
            "job_no": 0,
            "sampling_step": 0,
            "sampling_steps": 0,
        }

    # ---- routes ----

    async def _txt2img(self, request: Request) -> Response:
        return await self._generate(request, img2img=False)

    async def _img2img(self, request: Request) -> Response:
        return await self._generate(request, img2img=True)

    async def _generate(self, request: Request, *, img2img: bool) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        body = await self._json(request)
        if isinstance(body, Response):
            return body
        sampler = body.get("sampler_name") or body.get("sampler_index") or "Euler"
        if sampler not in SAMPLERS:
            return _error(404, "Sampler not found")
        scheduler = body.get("scheduler")
        if scheduler is not None and scheduler not in SCHEDULERS:
            return _error(404, "Scheduler not found")
        checkpoint = (body.get("override_settings") or {}).get("sd_model_checkpoint")
        if checkpoint is not None and not any(
            checkpoint in (m["title"], m["model_name"], m["hash"]) for m in self.models
        ):
            return _error(500, f"model {checkpoint!r} not found", error="RuntimeError")
        init_images: list[Image.Image] = []
        mask = None
        if img2img:
            encoded = body.get("init_images")
            if not encoded:
                return _error(404, "Init image not found")
            for item in encoded:
                image = _decode_b64_image(item) if isinstance(item, str) else None
                if image is None:
                    return _error(500, "Invalid encoded image")
                init_images.append(image)
            if body.get("mask"):
                mask = _decode_b64_image(body["mask"])
                if mask is None:
                    return _error(500, "Invalid encoded image")
        self.received.append((request.url.path, body))
        return await self._run(request.url.path, body, init_images[0] if init_images else None, mask)

    async def _run(self, path: str, body: dict, init: Image.Image | None, mask: Image.Image | None) -> Response:
        steps = body.get("steps", 50)
        batch_size, n_iter = body.get("batch_size", 1), body.get("n_iter", 1)
        width, height = body.get("width", 512), body.get("height", 512)
        seed = body.get("seed", -1)
        seed = random.randrange(2**32) if seed == -1 else seed
        strength = body.get("denoising_strength", 0.75) if init is not None else 1.0
        job = Job(path=path, steps_total=steps * n_iter)
        self.jobs.append(job)
        self._interrupted = False
        self._time_start = time.time()
        self._state = {
            **self._idle_state(),
            "job": "scripts_img2img" if init else "scripts_txt2img",
            "job_count": n_iter,
            "job_timestamp": time.strftime("%Y%m%d%H%M%S"),
            "sampling_steps": steps,
        }
        for iteration in range(n_iter):
            self._state["job_no"] = iteration
            for step in range(1, steps + 1):
                await asyncio.sleep(self.step_delay)
                if self._interrupted:
                    break
                self._state["sampling_step"] = step
                job.steps_done += 1
            if self._interrupted:
                break
        job.interrupted = self._interrupted
        job.finished = True
        self._state = self._idle_state()
        # Like the webui, an interrupted batch still answers 200 with the images it decoded.
        count = batch_size * n_iter
        all_seeds = [seed + index for index in range(count)]
        prompt = body.get("prompt", "")
        infotexts = [
            f"{prompt}\nSteps: {steps}, Sampler: {body.get('sampler_name')}, Seed: {s}, Size: {width}x{height}"
            for s in all_seeds
        ]
        images = [
            _encode_png(render(width, height, s, prompt, init=init, mask=mask, strength=strength), infotexts[i])
            for i, s in enumerate(all_seeds)
        ]
        info = {
            "prompt": prompt,
            "all_prompts": [prompt] * count,
            "negative_prompt": body.get("negative_prompt", ""),
            "seed": seed,
            "all_seeds": all_seeds,
            "subseed": seed + 1,
            "all_subseeds": [seed + 1] * count,
            "width": width,
            "height": height,
            "sampler_name": body.get("sampler_name"),
            "cfg_scale": body.get("cfg_scale", 7.0),
            "steps": steps,
            "batch_size": batch_size,
            "denoising_strength": body.get("denoising_strength"),
            "index_of_first_image": 0,
            "sd_model_name": (body.get("override_settings") or {}).get(
                "sd_model_checkpoint", self.models[0]["model_name"]
            ),
            "infotexts": infotexts,
        }
        parameters = {key: value for key, value in body.items() if key not in ("init_images", "mask")}
        return JSONResponse({"images": images, "parameters": parameters, "info": json.dumps(info)})

    async def _progress(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        self.progress_polls += 1
        state = dict(self._state)
        if state["job_count"] == 0:
            return JSONResponse(
                {"progress": 0, "eta_relative": 0, "state": state, "current_image": None, "textinfo": None}
            )
        progress = 0.01 + state["job_no"] / state["job_count"]
        if state["sampling_steps"] > 0:
            progress += state["sampling_step"] / state["sampling_steps"] / state["job_count"]
        elapsed = time.time() - self._time_start
        return JSONResponse(
            {
                "progress": min(progress, 1),
                "eta_relative": elapsed / progress - elapsed,
                "state": state,
                "current_image": None,
                "textinfo": None,
            }
        )

    async def _interrupt(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        self.interrupts += 1
        self._interrupted = True
        self._state["interrupted"] = True
        return JSONResponse({})

    async def _sd_models(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        return JSONResponse(self.models)

    async def _samplers(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        return JSONResponse(
            [
                {"name": name, "aliases": SAMPLER_ALIASES.get(name, []), "options": {"scheduler": "karras"}}
                if name == "DPM++ SDE"
                else {"name": name, "aliases": SAMPLER_ALIASES.get(name, []), "options": {}}
                for name in SAMPLERS
            ]
        )

    async def _schedulers(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        if not self.schedulers_route:
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        return JSONResponse(
            [
                {
                    "name": name,
                    "label": SCHEDULER_LABELS[name],
                    "aliases": None,
                    "default_rho": 7.0 if name == "karras" else -1,
                    "need_inner_model": False,
                }
                for name in SCHEDULERS
            ]
        )

    async def _upscalers(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        return JSONResponse(
            [
                {
                    "name": name,
                    "model_name": "ESRGAN_4x" if name.startswith("R-ESRGAN") else None,
                    "model_path": "/webui/models/RealESRGAN/RealESRGAN_x4plus.pth" if name.startswith("R-") else None,
                    "model_url": None,
                    "scale": 4.0 if name.startswith("R-") else None,
                }
                for name in UPSCALERS
            ]
        )

    async def _extra_single_image(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        body = await self._json(request)
        if isinstance(body, Response):
            return body
        factor = body.get("upscaling_resize", 2)
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or factor <= 0:
            return JSONResponse(
                {
                    "detail": [
                        {
                            "type": "greater_than",
                            "loc": ["body", "upscaling_resize"],
                            "msg": "Input should be greater than 0",
                            "input": factor,
                        }
                    ]
                },
                status_code=422,
            )
        if body.get("resize_mode", 0) not in (0, 1):
            return _validation_error("resize_mode", body.get("resize_mode"), "literal")
        upscaler = body.get("upscaler_1", "None")
        if upscaler not in UPSCALERS:
            return _error(500, "", error="AssertionError", errors=f"could not find upscaler named {upscaler}")
        image = _decode_b64_image(body.get("image") or "")
        if image is None:
            return _error(500, "Invalid encoded image")
        self.received.append((request.url.path, body))
        size = (round(image.width * factor), round(image.height * factor))
        upscaled = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        return JSONResponse(
            {
                "html_info": f"<p>Postprocess upscale by: {factor}, upscaler: {upscaler}</p>",
                "image": _encode_png(upscaled),
            }
        )
