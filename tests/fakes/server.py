"""Run any ASGI app under uvicorn on 127.0.0.1 in a background thread, for the length of a test.

Fakes that must speak real HTTP and websockets (not an in-process transport) use this: the adapter
under test opens real sockets, so connection refusals, timeouts and websocket handshakes behave as
they would against the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn
import uvicorn.config
from starlette.responses import Response


@dataclass
class RunningServer:
    """A live server: its base URL, and the event loop its handlers run on."""

    base_url: str
    port: int
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return getattr(self._server, "fake_loop", None)

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)


class _Server(uvicorn.Server):
    fake_loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self.fake_loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)


def start_server(app, *, startup_timeout: float = 10.0) -> RunningServer:
    """Start `app` on a free port and return once it accepts connections."""
    # Binding the socket ourselves hands uvicorn a port that is already ours: no race for a free one.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        # The sans-I/O websockets protocol avoids the deprecated legacy implementation where available.
        ws="websockets-sansio" if "websockets-sansio" in uvicorn.config.WS_PROTOCOLS else "auto",
        timeout_graceful_shutdown=1,
    )
    server = _Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"fake-server-{port}"
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the fake server did not start")
        time.sleep(0.01)
    return RunningServer(base_url=f"http://127.0.0.1:{port}", port=port, _server=server, _thread=thread)


@contextlib.contextmanager
def serve(app) -> Iterator[RunningServer]:
    """Context manager form of start_server: the server stops when the block ends."""
    running = start_server(app)
    try:
        yield running
    finally:
        running.stop()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens, for connection-refused tests."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class Injected:
    """A canned answer (or a delay) queued for the next call to one path."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Injections:
    """Per-path switches a test flips to make a fake fail, answer garbage, or stall.

    Tests flip them from their own thread while the fake answers on the server's thread, hence the lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: dict[str, deque[Injected]] = {}

    def clear(self) -> None:
        with self._lock:
            self._queued.clear()

    def fail_next(
        self, path: str, status: int, body: object, *, headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        for _ in range(times):
            self._add(path, Injected(status, raw, "application/json", dict(headers or {})))

    def malformed_next(self, path: str, raw: bytes, *, content_type: str = "application/json") -> None:
        self._add(path, Injected(200, raw, content_type))

    def slow_next(self, path: str, seconds: float) -> None:
        self._add(path, Injected(0, b"", "", delay=seconds))

    async def answer(self, path: str) -> Response | None:
        """The canned response for this call, or None to handle it normally (after any delay)."""
        with self._lock:
            queue = self._queued.get(path)
            injected = queue.popleft() if queue else None
        if injected is None:
            return None
        if injected.delay:
            await asyncio.sleep(injected.delay)
            return None
        return Response(
            injected.body,
            status_code=injected.status,
            media_type=injected.content_type,
            headers=injected.headers,
        )

    def _add(self, path: str, injected: Injected) -> None:
        with self._lock:
            self._queued.setdefault(path, deque()).append(injected)
