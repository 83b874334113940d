"""Reads a page the way a strict Content-Security-Policy will: anything inline that would need 'unsafe-inline'."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class PageFacts:
    scripts: list[dict[str, str | None]] = field(default_factory=list)
    stylesheets: list[str] = field(default_factory=list)
    inline_problems: list[str] = field(default_factory=list)
    html_attributes: dict[str, str | None] = field(default_factory=dict)
    body_attributes: dict[str, str | None] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.facts = PageFacts()
        self._in_script: dict[str, str | None] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on"):
                self.facts.inline_problems.append(f"<{tag} {name}=...> event handler attribute")
            if name == "style":
                self.facts.inline_problems.append(f"<{tag} style=...> style attribute")
        if tag == "html":
            self.facts.html_attributes = attributes
        elif tag == "body":
            self.facts.body_attributes = attributes
        elif tag == "style":
            self.facts.inline_problems.append("<style> element")
        elif tag == "script":
            self.facts.scripts.append(attributes)
            self._in_script = attributes
        elif tag == "link" and attributes.get("rel") == "stylesheet":
            self.facts.stylesheets.append(attributes.get("href") or "")
        elif tag == "a" and attributes.get("href"):
            self.facts.links.append(attributes["href"] or "")
        if attributes.get("id"):
            self.facts.ids.append(attributes["id"])
        for name, value in attrs:
            if value and value.strip().lower().startswith("javascript:"):
                self.facts.inline_problems.append(f"<{tag} {name}=javascript:...>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None and data.strip():
            self.facts.inline_problems.append("inline <script> content")


def read_page(html: str) -> PageFacts:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.facts
