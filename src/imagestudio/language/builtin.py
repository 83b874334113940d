"""The built-in describer: always available, and honest that it is not an AI model.

It enhances a prompt by phrasing the prompt options after it (the template), and captions an image
with what can be measured: size, orientation, dominant colours, brightness and contrast. It answers
no questions: chat requests raise LanguageNotConfiguredError naming the setting that would help.
"""

from __future__ import annotations

import colorsys
from collections.abc import AsyncIterator, Mapping

from PIL import Image, ImageOps, ImageStat

from imagestudio.language.base import (
    CaptionStyle,
    ChatRequest,
    ChatResult,
    LanguageNotConfiguredError,
    StreamItem,
    Usage,
)
from imagestudio.language.tasks import template_prompt

BUILTIN_MODEL = "measured"
TEMPLATE_MODEL = "template"
NOT_AI_NOTE = "Measured by the built-in describer, not an AI model."
_NO_CHAT = (
    "the built-in describer answers no questions; set IMAGESTUDIO_LANGUAGE_URL and IMAGESTUDIO_LANGUAGE_MODEL "
    "to use a language model"
)
# Colours that cover less of the picture than this are not named.
_MIN_SHARE = 0.12


class BuiltinLanguageModel:
    name = "builtin"
    kind = "builtin"

    def __repr__(self) -> str:
        return "BuiltinLanguageModel()"

    def configuration_problem(self) -> str | None:
        return None

    def model_for(self, *, vision: bool) -> str:
        return BUILTIN_MODEL if vision else TEMPLATE_MODEL

    async def complete(self, request: ChatRequest) -> ChatResult:
        raise LanguageNotConfiguredError(_NO_CHAT)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        raise LanguageNotConfiguredError(_NO_CHAT)
        yield  # pragma: no cover  (makes this an async generator like the others)

    async def describe(self, image: Image.Image, style: CaptionStyle, *, model: str | None = None) -> ChatResult:
        return ChatResult(
            measured_caption(image, style), provider=self.name, model=BUILTIN_MODEL, usage=Usage(), by_ai=False
        )

    async def title(self, text: str, *, context: str | None = None) -> ChatResult:
        raise LanguageNotConfiguredError(_NO_CHAT)

    async def enhance(
        self,
        prompt: str,
        options: Mapping[str, object],
        *,
        caption: str | None = None,
        model: str | None = None,
        context: str | None = None,
    ) -> ChatResult:
        # A template has nobody to read the session's note: the prompt goes as the options phrase it.
        return ChatResult(template_prompt(prompt, options), provider=self.name, model=TEMPLATE_MODEL, by_ai=False)

    async def aclose(self) -> None:
        """Nothing to release."""


def measured_caption(image: Image.Image, style: CaptionStyle) -> str:
    picture = ImageOps.exif_transpose(image)
    width, height = picture.size
    small = picture.convert("RGB")
    small.thumbnail((128, 128))
    colours = dominant_colours(small)
    grey = small.convert("L")
    stat = ImageStat.Stat(grey)
    brightness = _brightness_word(stat.mean[0])
    contrast = _contrast_word(stat.stddev[0])
    shape = orientation(width, height)
    palette = _and_list(colours)
    if style == CaptionStyle.prompt:
        return f"a {shape} picture in {palette} tones, {brightness}, {contrast} contrast"
    short = f"A {width}x{height} {shape} image, mostly {palette}, {brightness} with {contrast} contrast."
    if style == CaptionStyle.short:
        return f"{short} {NOT_AI_NOTE}"
    mean = stat.mean[0] / 255
    spread = stat.stddev[0] / 255
    return (
        f"{short} Mean brightness {mean:.0%}, contrast (spread of brightness) {spread:.0%}; "
        f"the colours that cover most of it are {palette}. {NOT_AI_NOTE}"
    )


def orientation(width: int, height: int) -> str:
    ratio = width / height
    if ratio > 1.05:
        return "landscape"
    if ratio < 1 / 1.05:
        return "portrait"
    return "square"


def dominant_colours(image: Image.Image, limit: int = 3) -> list[str]:
    """Names of the colours covering the most pixels, largest first (at least one)."""
    shares: dict[str, int] = {}
    rgb = image.convert("RGB")
    for count, (red, green, blue) in rgb.getcolors(rgb.width * rgb.height) or []:
        name = colour_name(red, green, blue)
        shares[name] = shares.get(name, 0) + count
    total = max(1, sum(shares.values()))
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    named = [name for name, count in ranked if count / total >= _MIN_SHARE][:limit]
    return named or [ranked[0][0]]


def colour_name(red: int, green: int, blue: int) -> str:
    hue, lightness, saturation = colorsys.rgb_to_hls(red / 255, green / 255, blue / 255)
    if saturation < 0.18 or lightness < 0.08 or lightness > 0.94:
        if lightness < 0.15:
            return "black"
        if lightness > 0.85:
            return "white"
        return "grey"
    degrees = hue * 360
    for limit, name in (
        (15, "red"),
        (40, "orange"),
        (68, "yellow"),
        (160, "green"),
        (195, "teal"),
        (255, "blue"),
        (290, "purple"),
        (350, "pink"),
        (361, "red"),
    ):
        if degrees < limit:
            base = name
            break
    if base == "orange" and lightness < 0.35:
        return "brown"
    if lightness < 0.3:
        return f"dark {base}"
    if lightness > 0.7:
        return f"light {base}"
    return base


def _brightness_word(mean: float) -> str:
    if mean < 60:
        return "dark"
    if mean < 110:
        return "dim"
    if mean < 170:
        return "evenly lit"
    return "bright"


def _contrast_word(stddev: float) -> str:
    if stddev < 25:
        return "low"
    if stddev < 60:
        return "moderate"
    return "high"


def _and_list(words: list[str]) -> str:
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]
