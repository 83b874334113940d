"""A private network for one test: a network namespace joined to this one by a veth pair, and TCP
proxies on the host side of the link that the test can freeze.

Everything stays inside this machine: the namespace's only route is the veth link, whose far end is
an address of this namespace on which only the test's proxies listen; the proxies forward to
services on 127.0.0.1. A partition is made two ways, as a real one happens:
- `Namespace.cut()` takes the link down: packets are dropped, nobody closes anything;
- `Proxy.freeze()` holds bytes in both directions without closing a socket (a peer that is still
  connected but no longer answers), optionally the moment a pattern passes (`freeze_on`), so a cut
  can land inside a given transaction or upload.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

CHUNK = 65536


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Namespace:
    """A network namespace with one veth link to the current namespace, on a /30 of its own."""

    subnet: int
    name: str = field(default_factory=lambda: f"imgs-part-{os.getpid()}-{secrets.token_hex(2)}")

    def __post_init__(self) -> None:
        suffix = self.name.rsplit("-", 1)[-1]
        self.host_link = f"vih{suffix}"
        self.inner_link = f"vin{suffix}"
        self.host_address = f"10.213.{self.subnet}.1"
        self.inner_address = f"10.213.{self.subnet}.2"
        self._created = False

    def create(self) -> None:
        _ip("netns", "add", self.name)
        self._created = True
        _ip("link", "add", self.host_link, "type", "veth", "peer", "name", self.inner_link)
        _ip("link", "set", self.inner_link, "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_link)
        _ip("link", "set", self.host_link, "up")
        self.run_ip("addr", "add", f"{self.inner_address}/30", "dev", self.inner_link)
        self.run_ip("link", "set", self.inner_link, "up")
        self.run_ip("link", "set", "lo", "up")

    def run_ip(self, *args: str) -> None:
        _ip("netns", "exec", self.name, "ip", *args)

    def command(self, argv: Sequence[str]) -> list[str]:
        """argv run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """Take the link down: from now on nothing passes either way, and nothing is closed."""
        _ip("link", "set", self.host_link, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_link, "up")

    def destroy(self) -> None:
        if not self._created:
            return
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        self._created = False


class Proxy:
    """Forwards TCP connections from (listen_host, an ephemeral port) to 127.0.0.1:target_port.

    Runs its own event loop on a thread. `freeze()` stops moving bytes (in both directions, on every
    connection, new ones included) while keeping every socket open; `thaw()` lets the held bytes go.
    `freeze_on(pattern)` freezes right after a client chunk containing `pattern` has been forwarded,
    so the server has received the statement or request but its answer is held."""

    def __init__(self, listen_host: str, target_port: int) -> None:
        self.listen_host = listen_host
        self.target_port = target_port
        self.port = 0
        self.triggered = threading.Event()
        self.client_chunks: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._open: asyncio.Event | None = None
        self._pattern: bytes | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="partition-proxy")

    def start(self) -> Proxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        self._open = asyncio.Event()
        self._open.set()
        self._server = await asyncio.start_server(self._accept, self.listen_host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def address(self) -> str:
        return f"{self.listen_host}:{self.port}"

    def freeze(self) -> None:
        self._call(self._set_open, False)

    def thaw(self) -> None:
        self._call(self._set_open, True)

    def freeze_on(self, pattern: bytes) -> None:
        """Freeze once a client chunk containing `pattern` has gone through (see the class doc)."""
        self.triggered.clear()
        self._call(self._set_pattern, pattern)

    def disarm(self) -> None:
        self._call(self._set_pattern, None)

    def frozen(self) -> bool:
        return self._open is not None and not self._open.is_set()

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _call(self, function, *args) -> None:
        done = threading.Event()

        def run() -> None:
            function(*args)
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(10)

    def _set_open(self, value: bool) -> None:
        assert self._open is not None
        if value:
            self._open.set()
        else:
            self._open.clear()

    def _set_pattern(self, pattern: bytes | None) -> None:
        self._pattern = pattern

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._set_open(True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, server_writer}
        await asyncio.gather(
            self._pump(client_reader, server_writer, from_client=True),
            self._pump(server_reader, client_writer, from_client=False),
        )
        self._writers -= {client_writer, server_writer}

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_client: bool) -> None:
        assert self._open is not None
        try:
            while True:
                await self._open.wait()
                data = await reader.read(CHUNK)
                if not data:
                    break
                # Bytes read while open but not yet written wait here if a freeze came in between.
                await self._open.wait()
                writer.write(data)
                await writer.drain()
                if from_client:
                    self.client_chunks.append(data[:512])
                    if self._pattern is not None and self._pattern in data:
                        self._pattern = None
                        self._open.clear()
                        self.triggered.set()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
