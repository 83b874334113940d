"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for tests of mail delivery.

    with MailServer() as server:
        settings = make_settings(smtp_url=server.url)
        ...
        message = server.wait_for(lambda m: m["To"] == "a@example.test")

`refuse(code, times)` makes the next `times` deliveries fail with that SMTP reply (4xx or 5xx), as a
busy or broken server does; `stop()` takes it off the network (connections are refused).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

LINK_PATTERN = re.compile(r"(https?://\S+#token=[A-Za-z0-9_-]+)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        with self.server.lock:
            if self.server.refusals:
                self.server.refusals -= 1
                self.server.refused += 1
                return self.server.refusal_reply
            message = message_from_bytes(envelope.content, policy=policy.default)
            self.server.received.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
            self.server.arrived.notify_all()
        return "250 OK"


class MailServer:
    def __init__(
        self, *, port: int | None = None, username: str | None = None, password: str | None = None, **smtp_options: Any
    ) -> None:
        self.port = port or free_port()
        self.username = username
        self.password = password
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        self.received: list[tuple[list[str], EmailMessage]] = []
        self.refusals = 0
        self.refused = 0
        self.refusal_reply = "451 4.3.0 Try again later"
        self.logins: list[str] = []
        options: dict[str, Any] = dict(smtp_options)
        if username is not None:
            # PLAIN only: aiosmtpd's LOGIN exchange stalls smtplib after a refusal.
            options.update(
                authenticator=self._authenticate,
                auth_require_tls=False,
                auth_required=True,
                auth_exclude_mechanism=["LOGIN"],
            )
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)

    def _authenticate(self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            self.username,
            self.password,
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)

    @property
    def url(self) -> str:
        credentials = f"{self.username}:{self.password}@" if self.username is not None else ""
        return f"smtp://{credentials}127.0.0.1:{self.port}?starttls=false"

    def start(self) -> MailServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> MailServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def refuse(self, reply: str, times: int) -> None:
        with self.lock:
            self.refusal_reply = reply
            self.refusals = times

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            return [message for _, message in self.received]

    def wait_for(self, match: Callable[[EmailMessage], bool], timeout: float = 20.0) -> EmailMessage:
        """The first received message that matches; waits for it (bounded), for servers that send in the background."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while True:
                for _, message in self.received:
                    if match(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching mail within {timeout}s; got {len(self.received)}")
                self.arrived.wait(left)


def to(address: str) -> Callable[[EmailMessage], bool]:
    return lambda message: message["To"] == address


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()


def link_in(message: EmailMessage) -> str:
    found = LINK_PATTERN.search(text_of(message))
    assert found, text_of(message)
    return found.group(1)


def token_in(message: EmailMessage) -> str:
    return link_in(message).rpartition("#token=")[2]
