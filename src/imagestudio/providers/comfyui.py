"""ComfyUI as a provider: fill a workflow template, queue it, follow it, fetch the images.

Wire format (server.py and execution.py upstream):
- POST /upload/image (multipart: image, overwrite, type, subfolder) -> {"name", "subfolder", "type"}
- POST /prompt {"prompt": graph, "client_id"} -> {"prompt_id", "number", "node_errors"}; a graph the
  server refuses is a 400 with {"error": {"type", "message", "details"}, "node_errors": {...}}
- ws://.../ws?clientId=... sends JSON {"type", "data"} frames ("progress" with value/max,
  "executing" with node null when a prompt is done, "execution_error", "execution_interrupted", ...)
  and binary preview frames, which we ignore
- GET /history/{prompt_id} -> {prompt_id: {"outputs": {node: {"images": [...]}}, "status": {...}}}
- GET /view?filename=&subfolder=&type= -> the image bytes
- POST /interrupt stops the running prompt; POST /queue {"delete": [ids]} drops pending ones
- GET /object_info/CheckpointLoaderSimple lists the checkpoints; GET /object_info/KSampler (the class
  of the templates' sampler node) lists sampler_name and scheduler choices

ComfyUI has no authentication of its own; deployments behind a proxy often want a bearer token, so one
may be given and is sent on every request and on the websocket handshake. If the websocket cannot be
opened (or drops), the adapter follows the prompt by polling its history instead.

Masks are uploaded as their own grayscale image and read by LoadImageMask from the red channel, so
white means "repaint", the same convention as every other provider here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Unpack
from urllib.parse import urlsplit, urlunsplit

import httpx
from PIL import Image
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from imagestudio.models.enums import GenerationType
from imagestudio.providers.base import (
    CancellationToken,
    GeneratedImage,
    GenerationCanceled,
    GenerationRequest,
    GenerationResult,
    PermanentError,
    ProgressCallback,
    RetriableError,
)
from imagestudio.providers.comfyui_templates import WorkflowTemplate, load_templates
from imagestudio.providers.selfhosted import (
    DEFAULT_MODEL_ID,
    ProgressReporter,
    SamplingChoices,
    SelfHostedProvider,
    ServerOptions,
    fit_to,
    json_or_none,
    malformed,
    raise_for_status,
    response_detail,
)
from imagestudio.providers.wire import decode_image, encode_png

logger = logging.getLogger(__name__)
# The websockets library logs handshake headers (a bearer token among them) at DEBUG; its own logger
# is pinned above that so no application logging setup can leak the token.
_websocket_logger = logging.getLogger(f"{__name__}.websocket")
_websocket_logger.setLevel(logging.WARNING)

SERVICE = "ComfyUI"
# How many node errors a refused graph quotes in its message.
MAX_NODE_ERRORS_QUOTED = 3


class ComfyUIProvider(SelfHostedProvider):
    """Talks to one ComfyUI server. Call `refresh()` once at startup to learn its checkpoints."""

    kind = "comfyui"
    service = SERVICE
    url_setting = "IMAGESTUDIO_COMFYUI_URL"
    url_hint = "a running ComfyUI server"
    credential_name = "token"
    # DEFAULT_MODEL_ID leaves the checkpoint slot of the workflow template alone.
    default_model_label = "Checkpoint named in the workflow"
    models_path = "/object_info/CheckpointLoaderSimple"

    def __init__(
        self,
        base_url: str | None,
        *,
        token: str | None = None,
        workflows_dir: str | Path | None = None,
        upload_subfolder: str = "imagestudio",
        use_websocket: bool = True,
        history_check_interval: float = 5.0,
        **options: Unpack[ServerOptions],
    ) -> None:
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Loaded now so a broken template is refused at startup (raises WorkflowTemplateError).
        self._templates = load_templates(workflows_dir)
        super().__init__(base_url, credentials={"headers": self._headers} if token else None, **options)
        self._upload_subfolder = upload_subfolder
        self._use_websocket = use_websocket
        self._history_check_interval = history_check_interval

    # ---- contract ----

    def _offered_models(self, body: object) -> list[tuple[str, str]]:
        return [(name, self._model_label(name)) for name in _checkpoint_names(body)]

    async def _list_choices(self) -> SamplingChoices:
        """The sampler and scheduler choices of the node the templates' `sampler` slot fills
        (GET /object_info/<its class>, e.g. KSampler's sampler_name and scheduler inputs)."""
        template = next(iter(self._templates.values()))
        node_id, sampler_input = template.slots["sampler"]
        class_type = str(template.graph[node_id]["class_type"])
        response = await self._call("GET", f"/object_info/{class_type}", action="list samplers")
        body = json_or_none(response, SERVICE, "list samplers")
        schedule = template.slots.get("scheduler")
        try:
            return SamplingChoices(
                samplers=_combo_choices(body, class_type, sampler_input),
                schedulers=_combo_choices(body, class_type, schedule[1]) if schedule and schedule[0] == node_id else (),
            )
        except PermanentError as error:
            # A template's own sampler node may not offer a list; its checkpoints still count.
            logger.warning("%s: the sampler choices stay unchecked: %s", SERVICE, error.message)
            return SamplingChoices()

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        self._require_base_url()
        cancel.raise_if_cancelled()
        template = self._template_for(request.type)
        values = self._slot_values(request, template)
        needs_init = template.type in (GenerationType.img2img, GenerationType.inpaint)
        # Refuse incomplete requests before uploading anything to the server.
        if needs_init and request.init_image is None:
            raise PermanentError(f"{request.type} needs an init image")
        if template.type == GenerationType.inpaint and request.mask_image is None:
            raise PermanentError("inpaint needs a mask image")
        # Both go up at the output size: masks keep hard edges, so they are resized without smoothing.
        uploads: list[tuple[str, Image.Image, Image.Resampling, str]] = []
        if needs_init:
            uploads.append(("init_image", request.init_image.convert("RGB"), Image.Resampling.LANCZOS, "init"))
        if template.type == GenerationType.inpaint:
            uploads.append(("mask_image", request.mask_image.convert("L"), Image.Resampling.NEAREST, "mask"))
        for slot, image, resample, role in uploads:
            fitted = fit_to(image, request.width, request.height, resample=resample)
            values[slot] = await self._upload(fitted, role=role)
        cancel.raise_if_cancelled()

        graph = template.fill(values)
        client_id = uuid.uuid4().hex
        # Open the websocket before queueing so no message about our prompt can be missed.
        websocket = await self._open_websocket(client_id)
        try:
            prompt_id = await self._queue_prompt(graph, client_id)
            try:
                entry = await self._wait(prompt_id, websocket, progress, cancel)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._stop(prompt_id))
                raise
        finally:
            if websocket is not None:
                with contextlib.suppress(Exception):
                    await websocket.close()

        references = _output_images(entry)[: request.num_images]
        if not references:
            raise malformed(SERVICE, "the workflow finished without saving any image")
        images = [await self._fetch_image(reference) for reference in references]
        seed = values.get("seed")
        generated = [
            # One seed drives the whole batch; only the first image is reproducible from it alone.
            GeneratedImage(image=image, seed=seed if index == 0 and isinstance(seed, int) else None)
            for index, image in enumerate(images)
        ]
        return GenerationResult(images=generated, model=request.model, usage={"prompt_id": prompt_id})

    # ---- building the graph ----

    def _types(self) -> frozenset[GenerationType]:
        types = set(self._templates)
        if GenerationType.img2img in types:
            types.add(GenerationType.variation)
        return frozenset(types)

    def _template_for(self, type: GenerationType) -> WorkflowTemplate:
        key = GenerationType.img2img if type == GenerationType.variation else type
        template = self._templates.get(key)
        if template is None:
            raise PermanentError(f"ComfyUI has no workflow template for {type}")
        return template

    def _slot_values(self, request: GenerationRequest, template: WorkflowTemplate) -> dict[str, object]:
        """Request values by slot name; None means "keep what the template says"."""
        seed = request.seed if request.seed is not None else random.randrange(2**32)
        model = request.model or self._default_model
        values: dict[str, object | None] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or "",
            "seed": seed,
            "steps": request.steps,
            "cfg": request.guidance,
            "sampler": request.scheduler,
            "scheduler": request.extra.get("scheduler"),
            "batch_size": request.num_images,
            "checkpoint": None if model == DEFAULT_MODEL_ID else model,
        }
        if template.type == GenerationType.text2img:
            values.update(width=request.width, height=request.height)
        else:
            strength = request.strength
            if strength is None and request.type == GenerationType.variation:
                strength = self._variation_strength
            values["denoise"] = strength
        return {slot: value for slot, value in values.items() if value is not None}

    # ---- talking to the server ----

    async def _upload(self, image: Image.Image, *, role: str) -> str:
        """Upload to ComfyUI's input folder; returns the name LoadImage expects (subfolder/name)."""
        filename = f"imagestudio-{uuid.uuid4().hex}-{role}.png"
        response = await self._call(
            "POST",
            "/upload/image",
            action=f"upload the {role} image",
            files={"image": (filename, encode_png(image), "image/png")},
            data={"overwrite": "true", "type": "input", "subfolder": self._upload_subfolder},
        )
        body = json_or_none(response, SERVICE, "upload an image")
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            raise malformed(SERVICE, "the upload answer had no file name")
        subfolder = body.get("subfolder") or ""
        if not isinstance(subfolder, str):
            raise malformed(SERVICE, "the upload answer had a bad subfolder")
        return f"{subfolder}/{body['name']}" if subfolder else body["name"]

    async def _queue_prompt(self, graph: dict, client_id: str) -> str:
        response = await self._exchange(
            "POST", "/prompt", action="queue the workflow", json={"prompt": graph, "client_id": client_id}
        )
        if response.status_code == 400:
            raise PermanentError(_refusal_message(response), code="provider_bad_workflow")
        raise_for_status(response, SERVICE, "queue the workflow")
        body = json_or_none(response, SERVICE, "queue the workflow")
        if not isinstance(body, dict) or not isinstance(body.get("prompt_id"), str):
            raise malformed(SERVICE, "the queue answer had no prompt_id")
        return body["prompt_id"]

    async def _open_websocket(self, client_id: str) -> ClientConnection | None:
        if not self._use_websocket:
            return None
        url = _websocket_url(self._require_base_url()) + f"/ws?clientId={client_id}"
        try:
            return await connect(
                url,
                additional_headers=self._headers or None,
                open_timeout=min(self._request_timeout, 10.0),
                max_size=None,  # preview frames can be large; we drop them unread
                logger=_websocket_logger,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            logger.info("%s websocket unavailable (%s); following progress by polling", SERVICE, type(exc).__name__)
            return None

    async def _wait(
        self,
        prompt_id: str,
        websocket: ClientConnection | None,
        progress: ProgressCallback,
        cancel: CancellationToken,
    ) -> dict:
        """Follow the prompt until it is done; returns its history entry."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._generation_timeout
        next_history_check = loop.time() + self._history_check_interval
        reporter = ProgressReporter(progress)
        while True:
            await self._stop_when_abandoned(prompt_id, cancel, deadline)
            if websocket is not None:
                news = await self._next_frame(websocket, prompt_id, reporter, cancel)
                if news == "closed":
                    websocket = None
                    continue
                if news == "finished":
                    entry = await self._finished_entry(prompt_id, cancel, wait=True)
                    reporter.finish()
                    return entry
                if loop.time() < next_history_check:
                    continue
                # A safety net: a missed message must not leave us waiting until the deadline.
                next_history_check = loop.time() + self._history_check_interval

            entry = await self._finished_entry(prompt_id, cancel, wait=False)
            if entry is not None:
                reporter.finish()
                return entry
            if websocket is None:
                await asyncio.sleep(self._poll_interval)

    async def _stop_when_abandoned(self, prompt_id: str, cancel: CancellationToken, deadline: float) -> None:
        """Stop the prompt on the server and raise once the token is set or the deadline passed."""
        if cancel.cancelled:
            await self._stop(prompt_id)
            raise GenerationCanceled()
        if asyncio.get_running_loop().time() > deadline:
            await self._stop(prompt_id)
            raise RetriableError(f"{SERVICE} did not finish the workflow within {self._generation_timeout:g}s")

    async def _next_frame(
        self, websocket: ClientConnection, prompt_id: str, reporter: ProgressReporter, cancel: CancellationToken
    ) -> Literal["closed", "finished"] | None:
        """Read at most one websocket frame (waiting one poll interval) and act on it if it is ours."""
        try:
            frame = await asyncio.wait_for(websocket.recv(), timeout=self._poll_interval)
        except TimeoutError:
            return None
        except ConnectionClosed:
            logger.info("%s websocket closed; following progress by polling", SERVICE)
            return "closed"
        message = _json_message(frame)
        data = message.get("data") if message else None
        if not isinstance(data, dict) or data.get("prompt_id") != prompt_id:
            return None
        return _on_prompt_message(message.get("type"), data, reporter, cancel)

    async def _finished_entry(self, prompt_id: str, cancel: CancellationToken, *, wait: bool) -> dict | None:
        """The prompt's history entry once it has finished (raising if it failed), else None.

        With wait=True (the websocket said it is done) the history is retried briefly, as the server
        records it just after announcing the end.
        """
        for attempt in range(20 if wait else 1):
            response = await self._call("GET", f"/history/{prompt_id}", action="read the workflow history")
            body = json_or_none(response, SERVICE, "read the workflow history")
            if not isinstance(body, dict):
                raise malformed(SERVICE, "the history was not a JSON object")
            entry = body.get(prompt_id)
            if entry is not None:
                if not isinstance(entry, dict):
                    raise malformed(SERVICE, "the history entry was not an object")
                if _entry_finished(entry):
                    _raise_for_entry(entry, cancel)
                    return entry
            if wait and attempt < 19:
                await asyncio.sleep(0.05)
        if wait:
            raise malformed(SERVICE, "the workflow was reported done but has no finished history entry")
        return None

    async def _fetch_image(self, reference: Mapping[str, str]) -> Image.Image:
        response = await self._call(
            "GET",
            "/view",
            action="download an output image",
            params={
                "filename": reference["filename"],
                "subfolder": reference.get("subfolder", ""),
                "type": reference.get("type", "output"),
            },
        )
        return decode_image(response.content, source=SERVICE)

    async def _stop(self, prompt_id: str) -> None:
        """Cancel our prompt without touching anyone else's: drop it if queued, interrupt if running."""
        running: set[str] | None = None
        pending: set[str] | None = None
        try:
            response = await self._call("GET", "/queue", action="read the queue")
            body = response.json()
            running = _queue_ids(body.get("queue_running"))
            pending = _queue_ids(body.get("queue_pending"))
        except Exception as exc:  # unknown state: do both, which is what an older client would do
            logger.warning("could not read the %s queue: %s", SERVICE, getattr(exc, "message", type(exc).__name__))
        if pending is None or prompt_id in pending:
            await self._best_effort("POST", "/queue", action="drop the queued workflow", json={"delete": [prompt_id]})
        if running is None or prompt_id in running:
            # Servers that know the body interrupt only this prompt; older ones ignore it.
            await self._best_effort(
                "POST", "/interrupt", action="interrupt the workflow", json={"prompt_id": prompt_id}
            )

    def _model_label(self, model_id: str) -> str:
        return Path(model_id).stem


# ---- reading the server's answers ----


def _websocket_url(base_url: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path, "", ""))


def _json_message(frame: object) -> dict | None:
    """A JSON text frame as a dict; binary preview frames and junk give None."""
    if not isinstance(frame, str):
        return None
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _on_prompt_message(
    kind: object, data: Mapping[str, object], reporter: ProgressReporter, cancel: CancellationToken
) -> Literal["finished"] | None:
    """Act on one websocket message about our prompt: report progress, raise its failure, or say done."""
    if kind == "progress":
        step, total = data.get("value"), data.get("max")
        if isinstance(step, int) and isinstance(total, int) and total > 0:
            reporter.report(min(step, total), total)
    elif kind == "execution_error":
        raise _execution_error(data)
    elif kind == "execution_interrupted":
        raise _interrupted(cancel)
    elif kind == "execution_success" or (kind == "executing" and data.get("node") is None):
        return "finished"
    return None


def _checkpoint_names(body: object) -> tuple[str, ...]:
    return _combo_choices(body, "CheckpointLoaderSimple", "ckpt_name")


def _combo_choices(body: object, class_type: str, input_name: str) -> tuple[str, ...]:
    """A combo input's choices from object_info: classic [[names], {...}] or newer ["COMBO", {"options"}]."""
    try:
        spec = body[class_type]["input"]["required"][input_name]  # type: ignore[index]
    except (KeyError, TypeError) as exc:
        raise malformed(SERVICE, f"object_info has no {class_type} {input_name} input") from exc
    choices = None
    if isinstance(spec, list) and spec:
        if isinstance(spec[0], list):
            choices = spec[0]
        elif spec[0] == "COMBO" and len(spec) > 1 and isinstance(spec[1], dict):
            choices = spec[1].get("options")
    if not isinstance(choices, list) or not all(isinstance(name, str) for name in choices):
        raise malformed(SERVICE, f"the {class_type} {input_name} choices were not a list of names")
    return tuple(choices)


def _refusal_message(response: httpx.Response) -> str:
    """Summarise a 400 from /prompt: the error, then the first few node errors with their nodes."""
    try:
        body = response.json()
    except ValueError:
        return f"{SERVICE} refused the workflow (HTTP 400): {response_detail(response)}"
    parts: list[str] = []
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        parts.append(str(error.get("message") or error.get("type") or "invalid workflow"))
    elif error:
        parts.append(str(error))
    node_errors = body.get("node_errors") if isinstance(body, dict) else None
    if isinstance(node_errors, dict):
        for node_id, node_error in list(node_errors.items())[:MAX_NODE_ERRORS_QUOTED]:
            if not isinstance(node_error, dict):
                continue
            reasons = node_error.get("errors") or []
            text = "; ".join(
                f"{r.get('message', '')}: {r.get('details', '')}".strip(": ") for r in reasons if isinstance(r, dict)
            )
            parts.append(f"node {node_id} ({node_error.get('class_type', '?')}): {text}")
    summary = " | ".join(part for part in parts if part) or "invalid workflow"
    if len(summary) > 600:
        summary = summary[:599] + "…"
    return f"{SERVICE} refused the workflow: {summary}"


def _execution_error(data: Mapping[str, object]) -> Exception:
    exception_type = str(data.get("exception_type") or "")
    message = str(data.get("exception_message") or "").strip()
    where = f"node {data.get('node_id')} ({data.get('node_type')})"
    if "OutOfMemory" in exception_type or "out of memory" in message.lower():
        return RetriableError(f"{SERVICE} ran out of memory in {where}", code="provider_out_of_memory")
    short = message if len(message) <= 300 else message[:299] + "…"
    return PermanentError(f"{SERVICE} failed in {where}: {exception_type or 'error'}: {short}")


def _interrupted(cancel: CancellationToken) -> Exception:
    if cancel.cancelled:
        return GenerationCanceled()
    # Someone else pressed stop on the shared server; our request itself was fine.
    return RetriableError(f"{SERVICE} interrupted the workflow (stopped on the server)")


def _entry_finished(entry: Mapping[str, object]) -> bool:
    status = entry.get("status")
    if isinstance(status, dict):
        return bool(status.get("completed")) or status.get("status_str") in ("success", "error")
    return bool(entry.get("outputs"))  # servers too old to record a status


def _raise_for_entry(entry: Mapping[str, object], cancel: CancellationToken) -> None:
    status = entry.get("status")
    if not isinstance(status, dict) or status.get("status_str") != "error":
        return
    for item in status.get("messages") or []:
        if isinstance(item, list) and len(item) == 2 and isinstance(item[1], dict):
            if item[0] == "execution_error":
                raise _execution_error(item[1])
            if item[0] == "execution_interrupted":
                raise _interrupted(cancel)
    raise PermanentError(f"{SERVICE} reports the workflow failed")


def _output_images(entry: Mapping[str, object]) -> list[dict[str, str]]:
    """Saved images from a history entry, in node order; previews only when nothing was saved."""
    outputs = entry.get("outputs")
    if not isinstance(outputs, dict):
        raise malformed(SERVICE, "the history entry had no outputs")
    saved: list[dict[str, str]] = []
    previews: list[dict[str, str]] = []
    for node_output in outputs.values():
        images = node_output.get("images") if isinstance(node_output, dict) else None
        for image in images or []:
            if not isinstance(image, dict) or not isinstance(image.get("filename"), str):
                raise malformed(SERVICE, "an output image had no filename")
            (saved if image.get("type", "output") == "output" else previews).append(image)
    return saved or previews


def _queue_ids(items: object) -> set[str]:
    """Prompt ids from /queue entries, which are [number, prompt_id, prompt, extra_data, outputs, ...]."""
    ids: set[str] = set()
    for item in items if isinstance(items, list) else []:
        if isinstance(item, list) and len(item) > 1 and isinstance(item[1], str):
            ids.add(item[1])
    return ids
