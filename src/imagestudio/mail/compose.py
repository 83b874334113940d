"""Mail bodies from templates: plain text and HTML, the studio's name, no tracking (no remote images,
no pixels, no rewritten links)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from imagestudio.config import Settings

TEMPLATES_DIR = Path(__file__).parent / "templates"
KINDS = ("invitation", "password_reset", "password_reset_unknown", "email_verification")

_environment = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _when(value: datetime) -> str:
    return value.strftime("%d %B %Y at %H:%M UTC")


def render(settings: Settings, kind: str, **context: Any) -> Rendered:
    """The subject and both bodies of a `kind` of mail; datetimes in the context are written out for people."""
    if kind not in KINDS:
        raise ValueError(f"no mail template {kind!r}")
    values = {name: _when(value) if isinstance(value, datetime) else value for name, value in context.items()}
    values.update(studio_name=settings.studio_name, public_url=settings.resolved_public_url)
    subject = " ".join(_environment.get_template(f"{kind}.subject").render(values).split())
    return Rendered(
        subject=subject,
        text=_environment.get_template(f"{kind}.txt").render(values),
        html=_environment.get_template(f"{kind}.html").render(values, subject=subject),
    )


def build_message(settings: Settings, *, to_address: str, subject: str, text: str, html: str) -> EmailMessage:
    """A multipart/alternative message, text first (the part plain clients show)."""
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = to_address
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message
