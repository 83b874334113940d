"""Run any ASGI app under uvicorn on 127.0.0.1 in a background thread, for the length of a test.

Fakes that must speak real HTTP and websockets (not an in-process transport) use this: the adapter
under test opens real sockets, so connection refusals, timeouts and websocket handshakes behave as
they would against the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn
import uvicorn.config


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
