"""What the built-in composer reads from a request: the sections asked for, the subject, and the
look (theme, accent colour, button size, corners, spacing), accumulated over a line of iterations.

Each instruction is read in order, so a later "light theme" undoes an earlier "dark theme" and
"without the footer" removes what "landing page" added. An image shown with the request lends its
dominant colour to the accent and its brightness to the theme.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageStat

# In the order they appear on the page.
SECTION_ORDER = (
    "navbar",
    "hero",
    "login",
    "signup",
    "dashboard",
    "features",
    "cards",
    "pricing",
    "table",
    "todo",
    "testimonials",
    "faq",
    "contact",
    "footer",
)
_SECTION_WORDS: dict[str, str] = {
    "navbar": r"nav(?:bar|igation)?|menu|header|top bar",
    "hero": r"landing|hero|home ?page|splash|marketing page",
    "login": r"log ?in|sign ?in|login",
    "signup": r"sign ?up|register|registration|create an account|onboarding",
    "dashboard": r"dashboard|analytics|admin panel|stats|statistics|metrics|kpis?",
    "features": r"features?|benefits",
    "cards": r"cards?|profiles?|products?|gallery|team",
    "pricing": r"pricing|prices?|plans?|tiers?|subscriptions?",
    "table": r"table|orders|invoices|transactions|data grid",
    "todo": r"todo|to-do|task list|tasks|checklist",
    "testimonials": r"testimonials?|reviews?|customer quotes",
    "faq": r"faqs?|questions",
    "contact": r"contact|feedback|get in touch|newsletter",
    "footer": r"footer",
}
_SECTION_PATTERNS = {name: re.compile(rf"\b(?:{words})\b") for name, words in _SECTION_WORDS.items()}
# A page kind brings the sections such a page has.
_BUNDLES = {"hero": ("navbar", "features", "footer"), "dashboard": ("navbar",)}
# "pricing table", "login form": the second word names the first's shape, not a section of its own.
_SHAPE_WORDS = re.compile(r"\b(pricing|log ?in|sign ?in|sign ?up|registration|contact)\s+(?:table|form|page|screen)\b")
_REMOVE = re.compile(r"\b(?:without|remove|drop|delete|hide|no)\s+(?:the\s+|a\s+|any\s+)?([a-z -]{3,30})")

ACCENTS = {
    "blue": "#2563eb",
    "indigo": "#4f46e5",
    "purple": "#7c3aed",
    "violet": "#7c3aed",
    "green": "#16a34a",
    "teal": "#0d9488",
    "red": "#dc2626",
    "orange": "#ea580c",
    "pink": "#db2777",
    "yellow": "#ca8a04",
    "amber": "#d97706",
    "brown": "#92400e",
    "gray": "#4b5563",
    "grey": "#4b5563",
    "black": "#111827",
}
_COLOUR = re.compile(rf"\b({'|'.join(ACCENTS)})\b")
_SUBJECT = re.compile(
    r"\b(?:for|called|named|brand(?:ed)? as)\s+(?:an?\s+|the\s+|my\s+|our\s+)?"
    r"([a-z0-9][a-z0-9 '&.-]{1,40}?)(?=\s*(?:[,.;:!?]|\bwith\b|\bthat\b|\band\b|\bin\b|\busing\b|$))"
)
_QUOTED = re.compile(r"[\"“”']([^\"“”']{2,40})[\"“”']")
_BIGGER = re.compile(r"\b(?:larger|bigger|large|big|huge)\b")
_SMALLER = re.compile(r"\b(?:smaller|small|tiny)\b")
BUTTON_STEPS = (-1, 3)
DEFAULT_SUBJECT = "Acme"
DEFAULT_ACCENT = ACCENTS["indigo"]


@dataclass
class Brief:
    sections: list[str] = field(default_factory=list)
    subject: str = DEFAULT_SUBJECT
    dark: bool = False
    accent: str = DEFAULT_ACCENT
    button_step: int = 0
    radius: int = 10
    density: str = "normal"
    serif: bool = False
    words: list[str] = field(default_factory=list)

    def has(self, section: str) -> bool:
        return section in self.sections


def read_brief(instructions: Sequence[str], image: Image.Image | None = None, *, context: str = "") -> Brief:
    """The brief a line of instructions adds up to, oldest first. The session's context (its look
    only: colours, theme, corners) and an image set the starting look."""
    brief = Brief()
    if context:
        _read_look(brief, context.lower())
    if image is not None:
        brief.accent, brief.dark = image_look(image)
    for instruction in instructions:
        _read(brief, instruction)
    if not brief.sections:
        brief.sections = ["navbar", "hero", "features", "footer"] if image is not None else ["cards"]
    brief.sections = [name for name in SECTION_ORDER if name in brief.sections]
    return brief


def _read(brief: Brief, instruction: str) -> None:
    text = instruction.strip()
    if not text:
        return
    brief.words.append(text)
    lowered = _SHAPE_WORDS.sub(lambda m: m.group(1), text.lower())
    removed = _removals(lowered)
    for name, pattern in _SECTION_PATTERNS.items():
        if name in removed:
            continue
        if pattern.search(lowered) and name not in brief.sections:
            brief.sections.append(name)
            brief.sections.extend(extra for extra in _BUNDLES.get(name, ()) if extra not in brief.sections)
    brief.sections = [name for name in brief.sections if name not in removed]
    _read_subject(brief, text)
    _read_look(brief, lowered)


def _removals(lowered: str) -> set[str]:
    removed = set()
    for match in _REMOVE.finditer(lowered):
        for name, pattern in _SECTION_PATTERNS.items():
            if pattern.search(match.group(1)):
                removed.add(name)
    return removed


def _read_subject(brief: Brief, text: str) -> None:
    quoted = _QUOTED.search(text)
    if quoted:
        brief.subject = quoted.group(1).strip()
        return
    named = _SUBJECT.search(text.lower())
    if named:
        words = named.group(1).strip().split()
        if words and not all(_SECTION_PATTERNS_ANY.search(word) for word in words):
            brief.subject = " ".join(word.capitalize() for word in words)


_SECTION_PATTERNS_ANY = re.compile(rf"\b(?:{'|'.join(_SECTION_WORDS.values())})\b")


def _read_look(brief: Brief, lowered: str) -> None:
    if re.search(r"\bdark\b", lowered):
        brief.dark = True
    if re.search(r"\blight (?:theme|mode|background)\b", lowered):
        brief.dark = False
    if "button" in lowered:
        if _BIGGER.search(lowered):
            brief.button_step = min(brief.button_step + 1, BUTTON_STEPS[1])
        elif _SMALLER.search(lowered):
            brief.button_step = max(brief.button_step - 1, BUTTON_STEPS[0])
    colours = _COLOUR.findall(lowered)
    if colours:
        brief.accent = ACCENTS[colours[-1]]
    if re.search(r"\bpill|\bfully rounded", lowered):
        brief.radius = 999
    elif re.search(r"\b(?:rounded|round|softer)\b", lowered):
        brief.radius = 18
    elif re.search(r"\b(?:square|sharp)\b", lowered):
        brief.radius = 0
    if re.search(r"\b(?:compact|dense|tighter)\b", lowered):
        brief.density = "compact"
    elif re.search(r"\b(?:spacious|airy|more space|roomier)\b", lowered):
        brief.density = "spacious"
    if re.search(r"\bserif\b", lowered) and "sans" not in lowered:
        brief.serif = True


def image_look(image: Image.Image) -> tuple[str, bool]:
    """The accent (its most colourful dominant colour) and whether the picture is dark."""
    small = image.convert("RGB").resize((48, 48))
    quantized = small.quantize(colors=6)
    palette = quantized.getpalette() or []
    counts = sorted(quantized.getcolors() or [], reverse=True)
    colours = [tuple(palette[index * 3 : index * 3 + 3]) for _, index in counts]

    def colourfulness(rgb: tuple[int, ...]) -> int:
        return max(rgb) - min(rgb)

    accent = max(colours, key=colourfulness) if colours else (79, 70, 229)
    if colourfulness(accent) < 40:
        accent = (79, 70, 229)
    dark = ImageStat.Stat(small.convert("L")).mean[0] < 100
    return "#{:02x}{:02x}{:02x}".format(*accent[:3]), dark
