"""A fake ComfyUI server speaking the real wire format (server.py / execution.py upstream).

HTTP: POST /upload/image (multipart), POST /prompt, GET /history[/{id}], GET /view, GET|POST /queue,
POST /interrupt, GET /object_info[/{class}]. Websocket: /ws?clientId=..., sending the same JSON
messages ComfyUI sends (status, execution_start, execution_cached, executing, progress, executed,
execution_success / execution_error / execution_interrupted) plus binary preview frames.

Prompts are validated like ComfyUI does (see comfyui_nodes) and queued; a worker runs them one at a
time, stepping the sampler with a delay so progress and interrupts are observable. ComfyUI has no
auth of its own; with a token set the fake behaves like the reverse proxy people put in front of it.
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
import struct
import threading
import time
import uuid
from dataclasses import dataclass

from PIL import Image, PngImagePlugin
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes.comfyui_nodes import (
    CATALOG,
    Choices,
    Executed,
    Float,
    Int,
    Interrupted,
    NodeFailure,
    execute_node,
    validate_prompt,
)
from tests.fakes.server import Injections

DEFAULT_CHECKPOINTS = ("v1-5-pruned-emaonly.safetensors", "sd_xl_base_1.0.safetensors")
PREVIEW_IMAGE = 1  # BinaryEventTypes.PREVIEW_IMAGE
PREVIEW_PNG = 2


@dataclass
class Job:
    """One executed prompt: tests read how far the sampler got and how it ended."""

    prompt_id: str
    steps_total: int = 0
    steps_done: int = 0
    interrupted: bool = False
    failed: bool = False
    finished: bool = False


@dataclass
class _QueueItem:
    number: int
    prompt_id: str
    prompt: dict
    extra_data: dict
    outputs: list[str]

    def as_list(self) -> list:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.outputs]


class _Runtime:
    """What the node functions call back into while one prompt runs."""

    def __init__(self, fake: FakeComfyUI, item: _QueueItem, job: Job) -> None:
        self.fake = fake
        self.prompt_id = item.prompt_id
        self.client_id = item.extra_data.get("client_id")
        self.job = job
        self.current_node: str | None = None

    def load_input(self, name: str) -> Image.Image:
        image = Image.open(io.BytesIO(self.fake.input_files[name]))
        image.load()
        return image

    def save_output(self, image: Image.Image, prefix: str) -> dict:
        self.fake._counter += 1
        filename = f"{prefix}_{self.fake._counter:05}_.png"
        info = PngImagePlugin.PngInfo()
        info.add_text("prompt", json.dumps(self.fake._running.prompt if self.fake._running else {}))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=info)
        self.fake.output_files[("", filename, "output")] = buffer.getvalue()
        return {"filename": filename, "subfolder": "", "type": "output"}

    async def sampler_step(self, node_id: str, step: int, total: int) -> None:
        self.job.steps_total = total
        await asyncio.sleep(self.fake.step_delay)
        if self.fake._interrupt_requested:
            raise Interrupted()
        failure = self.fake.execution_error_next
        if failure is not None:
            self.fake.execution_error_next = None
            raise NodeFailure(*failure)
        self.job.steps_done += 1
        await self.fake._send(
            self.client_id,
            "progress",
            {"value": step, "max": total, "prompt_id": self.prompt_id, "node": node_id},
        )
        if step == self.fake.drop_websocket_at_step and self.client_id in self.fake.sockets:
            await self.fake.sockets[self.client_id].close(code=1011)
        preview = io.BytesIO()
        Image.new("RGB", (8, 8), (step * 10 % 256, 0, 0)).save(preview, format="PNG")
        await self.fake._send_bytes(
            self.client_id, struct.pack(">II", PREVIEW_IMAGE, PREVIEW_PNG) + preview.getvalue()
        )

    async def node_starting(self, node_id: str) -> None:
        if self.fake._interrupt_requested:  # ComfyUI checks before every node too
            raise Interrupted()
        self.current_node = node_id
        await self.fake._send(
            self.client_id,
            "executing",
            {"node": node_id, "display_node": node_id, "prompt_id": self.prompt_id},
        )


class FakeComfyUI:
    """The fake server's state and ASGI app; one instance may serve many tests via reset()."""

    def __init__(self, *, token: str | None = None, step_delay: float = 0.01) -> None:
        self.token = token
        self.step_delay = step_delay
        self.injections = Injections()
        self._lock = threading.Lock()
        self._worker: asyncio.Task | None = None
        self.app = Starlette(
            routes=[
                Route("/upload/image", self._upload_image, methods=["POST"]),
                Route("/prompt", self._post_prompt, methods=["POST"]),
                Route("/prompt", self._get_prompt, methods=["GET"]),
                Route("/history", self._history_all, methods=["GET"]),
                Route("/history/{prompt_id}", self._history_one, methods=["GET"]),
                Route("/view", self._view, methods=["GET"]),
                Route("/queue", self._get_queue, methods=["GET"]),
                Route("/queue", self._post_queue, methods=["POST"]),
                Route("/interrupt", self._post_interrupt, methods=["POST"]),
                Route("/object_info", self._object_info_all, methods=["GET"]),
                Route("/object_info/{node_class}", self._object_info_one, methods=["GET"]),
                WebSocketRoute("/ws", self._websocket),
            ]
        )
        self.sockets: dict[str, WebSocket] = {}
        self.reset()

    # ---- test controls ----

    def reset(self) -> None:
        self.checkpoints: list[str] = list(DEFAULT_CHECKPOINTS)
        self.input_files: dict[str, bytes] = {}
        self.output_files: dict[tuple[str, str, str], bytes] = {}
        self.uploads: list[dict] = []
        self.prompts: list[dict] = []
        self.history: dict[str, dict] = {}
        self.interrupts: list[dict] = []
        self.queue_deletes: list[str] = []
        self.jobs: list[Job] = []
        self.auth_failures = 0
        self.websocket_connections = 0
        self.websocket_enabled = True
        self.paused = False  # hold prompts in the queue, as if another job were running
        self.node_errors_next = False
        self.execution_error_next: tuple[str, str] | None = None
        self.drop_websocket_at_step: int | None = None  # the server closes the client's socket mid-run
        self.injections.clear()
        with self._lock:
            self._queue: list[_QueueItem] = []
            self._running: _QueueItem | None = None
            # A job left running by a previous test stops at its next step.
            self._interrupt_requested = True
        self._number = 0
        self._counter = 0

    def fail_next(
        self,
        path: str,
        status: int,
        *,
        body: object = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        self.injections.fail_next(
            path,
            status,
            {"error": f"fake failure {status}"} if body is None else body,
            headers=headers,
            times=times,
        )

    def malformed_next(self, path: str, raw: bytes, *, content_type: str = "application/json") -> None:
        self.injections.malformed_next(path, raw, content_type=content_type)

    def slow_next(self, path: str, seconds: float) -> None:
        self.injections.slow_next(path, seconds)

    @property
    def current_job(self) -> Job | None:
        return self.jobs[-1] if self.jobs else None

    def pending_ids(self) -> list[str]:
        with self._lock:
            return [item.prompt_id for item in self._queue]

    # ---- plumbing ----

    def _authorised(self, headers) -> bool:
        if self.token is None:
            return True
        return secrets.compare_digest(headers.get("authorization", ""), f"Bearer {self.token}")

    async def _gate(self, request: Request) -> Response | None:
        if not self._authorised(request.headers):
            self.auth_failures += 1
            return JSONResponse(
                {"error": "Unauthorized"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return await self.injections.answer(request.url.path)

    async def _send(self, client_id: str | None, event: str, data: dict) -> None:
        sockets = [self.sockets.get(client_id)] if client_id else list(self.sockets.values())
        for socket in sockets:
            if socket is None:
                continue
            try:
                await socket.send_json({"type": event, "data": data})
            except Exception:  # a client that went away mid-run, as aiohttp tolerates it
                pass

    async def _send_bytes(self, client_id: str | None, payload: bytes) -> None:
        socket = self.sockets.get(client_id) if client_id else None
        if socket is not None:
            try:
                await socket.send_bytes(payload)
            except Exception:
                pass

    def _queue_info(self) -> dict:
        with self._lock:
            remaining = len(self._queue) + (1 if self._running else 0)
        return {"exec_info": {"queue_remaining": remaining}}

    # ---- the worker ----

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    async def _work(self) -> None:
        while True:
            with self._lock:
                item = self._queue.pop(0) if self._queue and not self.paused else None
                if item is not None:
                    self._running = item
                    self._interrupt_requested = False
            if item is None:
                await asyncio.sleep(0.01)
                continue
            try:
                await self._execute(item)
            finally:
                with self._lock:
                    self._running = None
            await self._send(None, "status", {"status": self._queue_info()})

    async def _execute(self, item: _QueueItem) -> None:
        job = Job(prompt_id=item.prompt_id)
        self.jobs.append(job)
        runtime = _Runtime(self, item, job)
        messages: list[list] = []

        async def event(name: str, data: dict) -> None:
            data = {**data, "prompt_id": item.prompt_id, "timestamp": int(time.time() * 1000)}
            messages.append([name, data])
            await self._send(runtime.client_id, name, data)

        await event("execution_start", {})
        await event("execution_cached", {"nodes": []})
        done = Executed()
        status = "success"
        try:
            for output in item.outputs:
                await execute_node(item.prompt, output, runtime, done, runtime.node_starting)
                await self._send(
                    runtime.client_id,
                    "executed",
                    {
                        "node": output,
                        "display_node": output,
                        "output": done.ui[output],
                        "prompt_id": item.prompt_id,
                    },
                )
            await event("execution_success", {})
        except Interrupted:
            status, job.interrupted = "error", True
            await event(
                "execution_interrupted",
                {
                    "node_id": runtime.current_node,
                    "node_type": item.prompt[runtime.current_node]["class_type"],
                    "executed": list(done.order),
                },
            )
        except NodeFailure as failure:
            status, job.failed = "error", True
            await event(
                "execution_error",
                {
                    "node_id": runtime.current_node,
                    "node_type": item.prompt[runtime.current_node]["class_type"],
                    "executed": list(done.order),
                    "exception_message": str(failure),
                    "exception_type": failure.exception_type,
                    "traceback": [],
                    "current_inputs": {},
                    "current_outputs": {},
                },
            )
        job.finished = True
        self.history[item.prompt_id] = {
            "prompt": item.as_list(),
            "outputs": done.ui,
            "status": {"status_str": status, "completed": status == "success", "messages": messages},
            "meta": {node: {"node_id": node, "display_node": node} for node in done.ui},
        }
        await self._send(runtime.client_id, "executing", {"node": None, "prompt_id": item.prompt_id})

    # ---- routes ----

    async def _websocket(self, websocket: WebSocket) -> None:
        if not self.websocket_enabled or not self._authorised(websocket.headers):
            await websocket.close(code=1008)  # refused before accept: the handshake gets a 403
            return
        await websocket.accept()
        self.websocket_connections += 1
        sid = websocket.query_params.get("clientId") or uuid.uuid4().hex
        self.sockets[sid] = websocket
        try:
            await websocket.send_json({"type": "status", "data": {"status": self._queue_info(), "sid": sid}})
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            if self.sockets.get(sid) is websocket:
                del self.sockets[sid]

    async def _upload_image(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        async with request.form() as form:
            return await self._store_upload(form)

    async def _store_upload(self, form: FormData) -> Response:
        image = form.get("image")
        if not isinstance(image, UploadFile) or not image.filename:
            return Response(status_code=400)
        upload_type = form.get("type") or "input"
        if upload_type not in ("input", "temp", "output"):
            return Response(status_code=400)
        subfolder = str(form.get("subfolder") or "")
        if subfolder.startswith("/") or ".." in subfolder.split("/") or "/" in image.filename:
            return Response(status_code=400)
        data = await image.read()
        name = image.filename
        key = f"{subfolder}/{name}" if subfolder else name
        if form.get("overwrite") not in ("true", "1"):
            stem, dot, ext = name.rpartition(".")
            counter = 1
            while key in self.input_files and self.input_files[key] != data:
                name = f"{stem} ({counter}){dot}{ext}"
                key = f"{subfolder}/{name}" if subfolder else name
                counter += 1
        self.input_files[key] = data
        self.uploads.append(
            {
                "name": name,
                "subfolder": subfolder,
                "type": upload_type,
                "overwrite": form.get("overwrite"),
                "content_type": image.content_type,
            }
        )
        return JSONResponse({"name": name, "subfolder": subfolder, "type": upload_type})

    async def _post_prompt(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        try:
            body = json.loads(await request.body())
        except ValueError:
            return Response("400: Bad Request", status_code=400)
        if not isinstance(body, dict) or "prompt" not in body:
            return JSONResponse(
                {
                    "error": {
                        "type": "no_prompt",
                        "message": "No prompt provided",
                        "details": "No prompt provided",
                        "extra_info": {},
                    },
                    "node_errors": {},
                },
                status_code=400,
            )
        prompt = body["prompt"]
        self.prompts.append({"prompt": prompt, "client_id": body.get("client_id")})
        if self.node_errors_next:
            self.node_errors_next = False
            self.checkpoints, saved = [], self.checkpoints  # as if the checkpoint had been deleted
            error, outputs, node_errors = validate_prompt(prompt, self._choices())
            self.checkpoints = saved
        else:
            error, outputs, node_errors = validate_prompt(prompt, self._choices())
        if error is not None:
            return JSONResponse({"error": error, "node_errors": node_errors}, status_code=400)
        prompt_id = str(uuid.uuid4())
        extra = dict(body.get("extra_data") or {})
        if "client_id" in body:
            extra["client_id"] = body["client_id"]
        with self._lock:
            self._number += 1
            self._queue.append(_QueueItem(self._number, prompt_id, prompt, extra, outputs))
            number = self._number
        self._ensure_worker()
        await self._send(None, "status", {"status": self._queue_info()})
        return JSONResponse({"prompt_id": prompt_id, "number": number, "node_errors": node_errors})

    async def _get_prompt(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        return JSONResponse(self._queue_info())

    async def _history_all(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        return JSONResponse(self.history)

    async def _history_one(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        prompt_id = request.path_params["prompt_id"]
        entry = self.history.get(prompt_id)
        return JSONResponse({prompt_id: entry} if entry is not None else {})

    async def _view(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        query = request.query_params
        filename = query.get("filename")
        if not filename:
            return Response(status_code=404)
        if filename.startswith("/") or ".." in filename:
            return Response(status_code=400)
        subfolder, kind = query.get("subfolder", ""), query.get("type", "output")
        data = self.output_files.get((subfolder, filename, kind))
        if data is None and kind == "input":
            data = self.input_files.get(f"{subfolder}/{filename}" if subfolder else filename)
        if data is None:
            return Response(status_code=404)
        return Response(
            data, media_type="image/png", headers={"Content-Disposition": f'filename="{filename}"'}
        )

    async def _get_queue(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        with self._lock:
            running = [self._running.as_list()] if self._running else []
            pending = [item.as_list() for item in self._queue]
        return JSONResponse({"queue_running": running, "queue_pending": pending})

    async def _post_queue(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        body = json.loads(await request.body() or b"{}")
        with self._lock:
            if body.get("clear"):
                self._queue.clear()
            for prompt_id in body.get("delete", []):
                self.queue_deletes.append(prompt_id)
                self._queue = [item for item in self._queue if item.prompt_id != prompt_id]
        return Response(status_code=200)

    async def _post_interrupt(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        target = body.get("prompt_id") if isinstance(body, dict) else None
        with self._lock:
            running = self._running.prompt_id if self._running else None
            applies = running is not None and (target is None or target == running)
            if applies:
                self._interrupt_requested = True
        self.interrupts.append({"prompt_id": target, "applied": applies})
        return Response(status_code=200)

    def _choices(self) -> dict[str, list[str]]:
        return {"checkpoints": list(self.checkpoints), "input_files": sorted(self.input_files)}

    def _node_info(self, name: str) -> dict:
        node_class = CATALOG[name]
        required: dict[str, list] = {}
        for input_name, spec in node_class.required.items():
            if isinstance(spec, Choices):
                options = self._choices()[spec.source] if spec.source else list(spec.static)
                required[input_name] = [options, {}]
            elif isinstance(spec, Int):
                required[input_name] = ["INT", {"default": spec.min, "min": spec.min, "max": spec.max}]
            elif isinstance(spec, Float):
                required[input_name] = ["FLOAT", {"default": spec.min, "min": spec.min, "max": spec.max}]
            else:
                required[input_name] = [spec]
        return {
            "input": {"required": required},
            "input_order": {"required": list(required)},
            "output": list(node_class.returns),
            "output_is_list": [False] * len(node_class.returns),
            "output_name": list(node_class.returns),
            "name": name,
            "display_name": name,
            "description": "",
            "python_module": "nodes",
            "category": "fake",
            "output_node": node_class.output_node,
        }

    async def _object_info_all(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        return JSONResponse({name: self._node_info(name) for name in CATALOG})

    async def _object_info_one(self, request: Request) -> Response:
        if (gated := await self._gate(request)) is not None:
            return gated
        name = request.path_params["node_class"]
        return JSONResponse({name: self._node_info(name)} if name in CATALOG else {})
