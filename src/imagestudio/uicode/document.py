"""The one document a UI generation stores: found in a model's answer, checked, and cut off from
the network.

A model answers with prose, a fenced code block or a bare document. `extract_document` finds the
HTML; `clean_document` refuses what is not one self-contained page (too large, several documents,
no markup) and removes every reference that would make a browser fetch something: external
stylesheets and scripts, `src`/`href`-like attributes that are not `data:` (or, for links, a
fragment, `mailto:` or `tel:`), CSS `@import` and `url()` of anything but `data:`, `<base>` and
meta refreshes. The preview's Content-Security-Policy blocks the network anyway; cleaning keeps
the code honest when it is copied and used elsewhere.
"""

from __future__ import annotations

import hashlib
import html
import re
from dataclasses import dataclass

from imagestudio.language import LanguagePermanentError
from imagestudio.models.limits import UI_CODE_MAX_BYTES

INVALID_CODE = "invalid_ui_code"

_FENCE = re.compile(r"```[ \t]*(?:html|HTML|htm)?[ \t]*\n(.*?)```", re.DOTALL)
_DOCUMENT = re.compile(r"(<!doctype html.*?</html\s*>|<html.*?</html\s*>)", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(
    r"<(?P<name>[a-zA-Z][\w:-]*)(?P<attrs>(?:\s+[^\s\"'>/=]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?)*)\s*/?>"
)
_ATTR = re.compile(r"(?P<name>[^\s\"'>/=]+)(?:\s*=\s*(?P<value>\"[^\"]*\"|'[^']*'|[^\s\"'=<>`]+))?")
_CSS_IMPORT = re.compile(r"@import\s+[^;]+;?", re.IGNORECASE)
_CSS_URL = re.compile(r"url\(\s*(?P<q>[\"']?)(?P<url>.*?)(?P=q)\s*\)", re.IGNORECASE | re.DOTALL)
_STYLE = re.compile(r"(?P<open><style\b[^>]*>)(?P<css>.*?)(?P<close></style\s*>)", re.IGNORECASE | re.DOTALL)

# Attributes whose value a browser fetches (or navigates to) by itself.
_FETCHING = {"src", "srcset", "poster", "data", "background", "action", "formaction", "ping", "manifest", "xlink:href"}
_LINKS = {"href"}
_GONE_ELEMENTS = {"base"}
_SAFE_LINK_PREFIXES = ("#", "data:", "mailto:", "tel:", "javascript:void(0)")


@dataclass(frozen=True)
class Document:
    html: str
    removed_references: int

    @property
    def data(self) -> bytes:
        return self.html.encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def extract_document(answer: str) -> str:
    """The HTML in a model's answer: a fenced block, else a whole document, else the answer itself."""
    fenced = _FENCE.findall(answer)
    if fenced:
        return max(fenced, key=len).strip()
    found = _DOCUMENT.search(answer)
    return found.group(1).strip() if found else answer.strip()


def clean_document(text: str) -> Document:
    """One self-contained page, or LanguagePermanentError(invalid_ui_code) saying why not."""
    if len(text.encode()) > UI_CODE_MAX_BYTES:
        raise LanguagePermanentError(f"the document is larger than {UI_CODE_MAX_BYTES} bytes", code=INVALID_CODE)
    if len(re.findall(r"<html[\s>]", text, re.IGNORECASE)) > 1:
        raise LanguagePermanentError("the answer holds more than one HTML document", code=INVALID_CODE)
    if not _TAG.search(text):
        raise LanguagePermanentError("the answer holds no HTML", code=INVALID_CODE)
    if not re.search(r"<html[\s>]", text, re.IGNORECASE):
        text = (
            f'<!doctype html>\n<html lang="en">\n<head><meta charset="utf-8"></head>\n<body>\n{text}\n</body>\n</html>'
        )
    elif not text.lower().startswith("<!doctype"):
        text = "<!doctype html>\n" + text
    removed = 0

    def tag(match: re.Match[str]) -> str:
        nonlocal removed
        rewritten, count = _clean_tag(match)
        removed += count
        return rewritten

    text = _TAG.sub(tag, text)

    def sheet(match: re.Match[str]) -> str:
        nonlocal removed
        cleaned, count = _clean_css(match.group("css"))
        removed += count
        return match.group("open") + cleaned + match.group("close")

    text = _STYLE.sub(sheet, text)
    return Document(text, removed)


def _clean_tag(match: re.Match[str]) -> tuple[str, int]:
    name = match.group("name").lower()
    attrs = {a.group("name").lower(): _value(a.group("value")) for a in _ATTR.finditer(match.group("attrs") or "")}
    dropped = _dropped_element(name, attrs)
    if dropped is not None:
        return "", dropped
    removed = 0
    kept: list[str] = []
    for attr in _ATTR.finditer(match.group("attrs") or ""):
        text, count = _clean_attribute(attr)
        removed += count
        if text:
            kept.append(text)
    if not removed:
        return match.group(0), 0
    closing = "/>" if match.group(0).endswith("/>") else ">"
    return f"<{match.group('name')}{''.join(' ' + item for item in kept)}{closing}", removed


def _dropped_element(name: str, attrs: dict[str, str]) -> int | None:
    """How many references an element that goes altogether takes with it; None when it stays."""
    if name in _GONE_ELEMENTS:
        return 1
    if name == "meta" and attrs.get("http-equiv", "").lower() == "refresh":
        return 1
    if name == "link" and not attrs.get("href", "").lower().startswith("data:"):
        return 1 if attrs.get("href") else 0
    return None


def _clean_attribute(attr: re.Match[str]) -> tuple[str, int]:
    """The attribute as kept ("" for none) and how many references were removed from it."""
    name = attr.group("name").lower()
    value = _value(attr.group("value")).strip()
    if name in _FETCHING and value and not value.lower().startswith("data:"):
        return "", 1
    if name in _LINKS and value and not value.lower().startswith(_SAFE_LINK_PREFIXES):
        return 'href="#"', 1
    if name == "style" and attr.group("value"):
        cleaned, count = _clean_css(value)
        return f'style="{html.escape(cleaned, quote=True)}"', count
    return attr.group(0), 0


def _value(raw: str | None) -> str:
    if raw is None:
        return ""
    if raw[:1] in ("'", '"'):
        raw = raw[1:-1]
    return html.unescape(raw)


def _clean_css(text: str) -> tuple[str, int]:
    removed = 0

    def url(match: re.Match[str]) -> str:
        nonlocal removed
        target = match.group("url").strip()
        if target.lower().startswith("data:") or not target or target.startswith("#"):
            return match.group(0)
        removed += 1
        return "url()"

    text, imports = _CSS_IMPORT.subn("", text)
    text = _CSS_URL.sub(url, text)
    return text, removed + imports
