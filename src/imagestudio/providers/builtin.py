"""The built-in renderer: a deterministic procedural image synthesiser with no AI and no weights.

It lets the studio work on a fresh machine with no keys. Pictures are layered from Pillow primitives
(gradients, circles, polygons, bands, value-noise fields); the prompt picks the palette and the kind of
composition, the seed picks the layout, so the same inputs always give the same pixels.

Output sizes by type:
- text2img and img2img: exactly the requested width x height (img2img resizes the init image to it
  with LANCZOS before blending, so strength 0 returns the resized init).
- inpaint and variation: the init image's size (the request's width/height are not used).
- upscale: the init image's size times the factor; refused when that exceeds max_size.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import random
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import anyio.to_thread
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter

from imagestudio.models.enums import IMAGE_TYPES, GenerationType
from imagestudio.models.limits import GUIDANCE_MAX, SEED_DRAW_BOUND, STEPS_MAX
from imagestudio.providers.base import (
    CancellationToken,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    PermanentError,
    ProgressCallback,
    ProviderCapabilities,
    preview_passes,
)
from imagestudio.providers.wire import ensure_servable

MODEL_ID = "builtin-procedural"
MODEL_LABEL = "Built-in renderer (not an AI model)"
# A flat image of the requested size (the peer of ComfyUI's EmptyImage): the cheapest honest picture,
# so benchmarks can compare the engine's own cost with other studios doing the same trivial work.
SOLID_MODEL_ID = "solid"
SOLID_MODEL_LABEL = "Plain colour (not an AI model)"
SOLID_TYPES = frozenset({GenerationType.text2img})

DEFAULT_STEPS = 20
DEFAULT_GUIDANCE = 7.5
DEFAULT_IMG2IMG_STRENGTH = 0.6
DEFAULT_VARIATION_STRENGTH = 0.5
# Renders up to this many pixels (summed over the batch) run on the event loop: a thread hop costs
# more than drawing a thumbnail-sized image.
INLINE_PIXEL_BUDGET = 128 * 128

RGB = tuple[int, int, int]

_ALL_TYPES = IMAGE_TYPES

# ---------------------------------------------------------------- prompt -> palette and style

_KEYWORD_COLOURS: dict[str, tuple[RGB, ...]] = {
    "sunset": ((255, 94, 58), (255, 153, 51), (255, 206, 84), (122, 36, 88)),
    "sunrise": ((255, 170, 90), (255, 214, 140), (250, 128, 114), (120, 160, 220)),
    "ocean": ((0, 70, 140), (0, 119, 182), (72, 202, 228), (3, 4, 94)),
    "sky": ((120, 180, 240), (180, 220, 255), (245, 250, 255)),
    "forest": ((34, 85, 34), (46, 139, 87), (107, 142, 35), (20, 50, 20)),
    "grass": ((124, 200, 60), (80, 160, 40), (170, 220, 90)),
    "night": ((10, 12, 40), (30, 30, 90), (70, 50, 120), (230, 230, 250)),
    "space": ((8, 6, 30), (60, 20, 110), (190, 60, 160), (240, 240, 255)),
    "fire": ((200, 30, 0), (255, 90, 0), (255, 190, 0), (60, 10, 0)),
    "snow": ((245, 248, 255), (200, 220, 240), (150, 180, 210)),
    "desert": ((237, 201, 175), (210, 160, 90), (180, 110, 60), (250, 230, 190)),
    "city": ((40, 40, 50), (90, 90, 110), (255, 200, 80), (0, 170, 230)),
    "neon": ((255, 0, 200), (0, 255, 240), (120, 0, 255), (15, 0, 30)),
    "flower": ((255, 105, 180), (255, 182, 193), (144, 238, 144), (255, 240, 245)),
    "autumn": ((204, 85, 0), (170, 60, 20), (230, 160, 40), (110, 60, 30)),
    "mountain": ((90, 100, 120), (140, 150, 170), (230, 235, 245), (60, 70, 60)),
    "storm": ((50, 55, 65), (90, 95, 110), (200, 210, 220)),
    "gold": ((212, 175, 55), (255, 215, 0), (150, 110, 20)),
    "moon": ((230, 230, 210), (40, 40, 80), (120, 120, 160)),
    "sun": ((255, 220, 80), (255, 160, 40), (255, 250, 210)),
    "red": ((220, 30, 40), (150, 10, 20)),
    "orange": ((255, 140, 0), (230, 100, 20)),
    "yellow": ((255, 225, 40), (240, 200, 0)),
    "green": ((40, 170, 70), (20, 110, 40)),
    "blue": ((30, 90, 220), (20, 50, 150)),
    "purple": ((130, 50, 180), (90, 30, 130)),
    "pink": ((255, 120, 190), (240, 80, 150)),
    "brown": ((120, 75, 40), (90, 55, 30)),
    "black": ((15, 15, 18), (40, 40, 45)),
    "white": ((250, 250, 250), (225, 225, 230)),
    "grey": ((128, 128, 132), (90, 90, 95)),
    "teal": ((0, 128, 128), (0, 170, 160)),
    "cyan": ((0, 220, 240), (0, 170, 200)),
    "magenta": ((230, 0, 170), (180, 0, 130)),
    "silver": ((192, 192, 200), (160, 160, 170)),
}
# Words that mean a keyword above (simple plurals are handled separately).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "ocean": ("sea", "water", "wave", "river", "lake", "underwater"),
    "desert": ("beach", "sand", "dune"),
    "forest": ("tree", "jungle", "leaf", "leaves", "woods"),
    "grass": ("meadow", "field", "spring"),
    "space": ("galaxy", "star", "cosmic", "nebula"),
    "fire": ("flame", "lava", "volcano"),
    "snow": ("ice", "winter", "frost"),
    "city": ("urban", "street", "skyline"),
    "neon": ("cyberpunk",),
    "flower": ("rose", "blossom", "garden"),
    "autumn": ("fall",),
    "mountain": ("hill",),
    "storm": ("rain", "cloud"),
    "gold": ("golden",),
    "moon": ("lunar",),
    "sun": ("sunny",),
    "purple": ("violet",),
    "grey": ("gray",),
    "red": ("crimson", "scarlet"),
    "blue": ("azure", "navy"),
}
_ALIASES = {synonym: keyword for keyword, synonyms in _SYNONYMS.items() for synonym in synonyms}

# Which composition a word suggests; words are matched after keyword lookup.
_STYLE_WORDS: dict[str, tuple[str, ...]] = {
    "bands": ("landscape", "horizon", "sunset", "sunrise", "mountain", "desert", "valley", "grass"),
    "waves": ("ocean", "storm"),
    "orbs": ("space", "night", "flower", "snow"),
    "shards": ("city", "neon", "abstract", "geometric", "crystal"),
    "rings": ("portrait", "eye", "planet", "moon", "sun"),
}
_STYLE_HINTS = {word: style for style, words in _STYLE_WORDS.items() for word in words}
_STYLES = ("orbs", "shards", "bands", "waves", "rings")
_STOPWORDS = frozenset(
    {"a", "an", "the", "of", "with", "and", "in", "on", "at", "by", "for", "to", "from", "into", "over"}
    | {"under", "very", "its", "it", "is", "are", "as", "or", "this", "that", "some", "many", "few"}
)
_MAX_PALETTE = 6


def _normalise(text: str | None) -> str:
    return " ".join((text or "").lower().split())


def _words(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z0-9]+", text) if w not in _STOPWORDS]


def _keyword(word: str) -> str | None:
    """The colour keyword a word stands for, also accepting simple plurals ("oceans")."""
    for candidate in (word, word[:-1] if word.endswith("s") else None):
        if candidate is None:
            continue
        if candidate in _KEYWORD_COLOURS:
            return candidate
        if candidate in _ALIASES:
            return _ALIASES[candidate]
    return None


def _digest(*parts: str) -> int:
    data = "\x1f".join(parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")


def _hashed_colour(word: str) -> RGB:
    """A stable colour for a word no keyword covers, so every prompt still steers the palette."""
    h = _digest("colour", word)
    hue = (h % 360) / 360
    saturation = 0.45 + ((h >> 9) % 45) / 100
    value = 0.45 + ((h >> 17) % 50) / 100
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def _related_colour(base: RGB, rng: random.Random) -> RGB:
    hue, saturation, value = colorsys.rgb_to_hsv(*(c / 255 for c in base))
    hue = (hue + rng.choice((-1, 1)) * rng.uniform(0.04, 0.5)) % 1.0
    saturation = min(1.0, max(0.15, saturation * rng.uniform(0.6, 1.3)))
    value = rng.uniform(0.2, 0.95)
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def _words_colours(word: str) -> tuple[RGB, ...]:
    key = _keyword(word)
    return _KEYWORD_COLOURS[key] if key else (_hashed_colour(word),)


def _close(a: RGB, b: RGB) -> bool:
    # Within this RGB distance two colours read as "the same colour" to a negative prompt.
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) < 90**2


def build_palette(prompt: str | None, negative_prompt: str | None, seed: int) -> tuple[RGB, ...]:
    """Colours for a picture: keyword colours first, then one stable colour per other word.

    The negative prompt removes colours near the colours its words stand for; when none is that
    close it still drops one colour picked by its hash, so any negative prompt changes the picture.
    """
    palette = _prompt_palette(prompt, seed)
    if _words(_normalise(negative_prompt)):
        palette = _without_negative(palette, negative_prompt)
    return tuple(palette)


def _prompt_palette(prompt: str | None, seed: int) -> list[RGB]:
    words = _words(_normalise(prompt))
    rng = random.Random(_digest("palette", _normalise(prompt) or f"seed:{seed}"))
    keywords = [k for w in words if (k := _keyword(w))]
    keyword_colours = [colour for k in keywords for colour in _KEYWORD_COLOURS[k]]
    other_colours = [_hashed_colour(w) for w in words if not _keyword(w)]
    palette: list[RGB] = []
    for colour in keyword_colours + other_colours:
        if colour not in palette and len(palette) < _MAX_PALETTE:
            palette.append(colour)
    if not palette:
        palette.append(_hashed_colour(f"seed:{seed}"))
    while len(palette) < 4:
        # Short or empty prompts: add related hues and shades so a picture always has some range.
        palette.append(_related_colour(palette[0], rng))
    return palette


def _without_negative(palette: list[RGB], negative_prompt: str | None) -> list[RGB]:
    banned = [c for w in _words(_normalise(negative_prompt)) for c in _words_colours(w)]
    kept = [c for c in palette if not any(_close(c, b) for b in banned)]
    if len(kept) == len(palette):
        kept.pop(_digest("negative", _normalise(negative_prompt)) % len(kept))
    if len(kept) < 2:
        # (Nearly) everything was banned: fall back to the complements of what was removed,
        # and to near-black and near-white when even those are banned.
        complements = [(255 - r, 255 - g, 255 - b) for r, g, b in palette]
        kept += [c for c in complements if not any(_close(c, b) for b in banned)]
        kept += [(24, 24, 28), (232, 232, 236)][: max(0, 2 - len(kept))]
    return kept[:_MAX_PALETTE]


def _style_hint(word: str) -> str | None:
    for candidate in (_keyword(word), word, word[:-1] if word.endswith("s") else None):
        if candidate in _STYLE_HINTS:
            return _STYLE_HINTS[candidate]
    return None


def _style(words: list[str], rng: random.Random) -> str:
    hinted = [hint for w in words if (hint := _style_hint(w))]
    if hinted and rng.random() < 0.8:
        return hinted[rng.randrange(len(hinted))]
    return _STYLES[rng.randrange(len(_STYLES))]


# ---------------------------------------------------------------- the procedural renderer


@dataclass(frozen=True)
class RenderSpec:
    """Everything that decides the pixels of one procedural render."""

    prompt: str
    seed: int
    width: int
    height: int
    steps: int = DEFAULT_STEPS
    negative_prompt: str | None = None
    guidance: float = DEFAULT_GUIDANCE


StepHook = Callable[..., None]


def _noop(*_: object) -> None:
    return None


class _Canvas:
    """Draws shapes given in fractions of the picture, so a composition survives a size change."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self.width, self.height = image.size
        self.short = min(self.width, self.height)
        self.draw = ImageDraw.Draw(image, "RGBA")

    def circle(self, cx: float, cy: float, radius: float, fill: tuple[int, int, int, int]) -> None:
        r = max(0.5, radius * self.short)
        x, y = cx * self.width, cy * self.height
        self.draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)

    def ring(self, cx: float, cy: float, radius: float, width: float, fill: tuple[int, int, int, int]) -> None:
        r = max(1.0, radius * self.short)
        x, y = cx * self.width, cy * self.height
        self.draw.ellipse((x - r, y - r, x + r, y + r), outline=fill, width=max(1, round(width * self.short)))

    def polygon(self, points: list[tuple[float, float]], fill: tuple[int, int, int, int]) -> None:
        self.draw.polygon([(x * self.width, y * self.height) for x, y in points], fill=fill)


def _value_noise(rng: random.Random, size: tuple[int, int], cells: tuple[int, int]) -> Image.Image:
    """Smooth seeded noise: random bytes on a coarse grid, resized up (Pillow's own noise is unseeded)."""
    gw, gh = max(2, cells[0]), max(2, cells[1])
    grid = Image.frombytes("L", (gw, gh), rng.randbytes(gw * gh))
    return grid.resize(size, Image.Resampling.BICUBIC)


def _pick(rng: random.Random, palette: tuple[RGB, ...], alpha: int) -> tuple[int, int, int, int]:
    r, g, b = palette[rng.randrange(len(palette))]
    return (r, g, b, alpha)


def _draw_primitive(
    canvas: _Canvas, style: str, rng: random.Random, palette: tuple[RGB, ...], scale: float, alpha: int
) -> None:
    fill = _pick(rng, palette, alpha)
    cx, cy = rng.random(), rng.random()
    if style == "orbs":
        canvas.circle(cx, cy, scale * rng.uniform(0.4, 1.0), fill)
    elif style == "rings":
        canvas.ring(cx, cy, scale * rng.uniform(0.5, 1.2), scale * 0.15, fill)
    elif style == "shards":
        corners = rng.randint(3, 5)
        start = rng.uniform(0, math.tau)
        points = []
        for k in range(corners):
            angle = start + k * math.tau / corners + rng.uniform(-0.4, 0.4)
            reach = scale * rng.uniform(0.5, 1.2)
            points.append((cx + math.cos(angle) * reach, cy + math.sin(angle) * reach))
        canvas.polygon(points, fill)
    elif style == "bands":
        # A ridge line across the picture, filled down to the bottom edge.
        top = 0.3 + 0.65 * cy
        roughness = scale * 0.6
        segments = 8
        points = [(i / segments, top + rng.uniform(-roughness, roughness)) for i in range(segments + 1)]
        canvas.polygon([(-0.01, 1.01), *points, (1.01, 1.01)], fill)
    else:  # waves
        amplitude = scale * 0.35
        thickness = scale * rng.uniform(0.3, 0.8)
        frequency = rng.uniform(0.8, 3.0)
        phase = rng.uniform(0, math.tau)
        segments = 16
        crest = [
            (i / segments, cy + amplitude * math.sin(phase + frequency * math.tau * i / segments))
            for i in range(segments + 1)
        ]
        trough = [(x, y + thickness) for x, y in reversed(crest)]
        canvas.polygon(crest + trough, fill)


def _contrast_factor(guidance: float) -> float:
    # 7.5 (the usual default) leaves the picture as drawn; lower flattens, higher punches it up.
    return min(2.0, max(0.5, 0.55 + 0.06 * guidance))


def render_scene(spec: RenderSpec, *, before_step: StepHook = _noop, after_step: StepHook = _noop) -> Image.Image:
    """Render one picture in `spec.steps` passes, coarse structure first, finer detail after.

    before_step runs before every pass (raise there to stop), after_step after every pass with the
    picture as it stands (a live view: copy it to keep it).
    """
    words = _words(_normalise(spec.prompt))
    palette = build_palette(spec.prompt, spec.negative_prompt, spec.seed)
    rng = random.Random(_digest("scene", _normalise(spec.prompt), str(spec.seed)))
    style = _style(words, rng)
    size = (spec.width, spec.height)

    # Background: a few palette colours on a tiny grid, smoothly stretched into a gradient field.
    grid_w, grid_h = rng.choice(((2, 2), (2, 3), (3, 2), (3, 3)))
    grid = Image.new("RGB", (grid_w, grid_h))
    grid.putdata([palette[rng.randrange(len(palette))] for _ in range(grid_w * grid_h)])
    image = grid.resize(size, Image.Resampling.BICUBIC)
    canvas = _Canvas(image)

    if style == "bands" or rng.random() < 0.3:
        # A focal disc (sun, moon, planet) anchors many compositions.
        centre_x, centre_y, radius = rng.uniform(0.2, 0.8), rng.uniform(0.15, 0.45), rng.uniform(0.08, 0.2)
        canvas.circle(centre_x, centre_y, radius, _pick(rng, palette, 220))

    steps = spec.steps
    noise_step = steps // 2
    for step in range(steps):
        before_step()
        fineness = step / (steps - 1) if steps > 1 else 0.0
        scale = 0.55 * (1 - fineness) + 0.035 * fineness
        for _ in range(1 + round(2 * fineness)):
            shape_style = style if rng.random() < 0.75 else _STYLES[rng.randrange(len(_STYLES))]
            alpha = round(150 - 70 * fineness + rng.uniform(-20, 20))
            _draw_primitive(canvas, shape_style, rng, palette, scale, alpha)
        if step == noise_step:
            # A soft noise field of one palette colour breaks up flat areas, like haze or clouds.
            cells = (rng.randint(3, 7), rng.randint(3, 7))
            mask = _value_noise(rng, size, cells).point(lambda v: max(0, v - 110))
            colour = Image.new("RGB", size, palette[rng.randrange(len(palette))])
            image.paste(colour, (0, 0), mask)
        if step == steps - 1:
            # Fine grain over everything, neutral on average (soft light around mid grey).
            grain = _value_noise(rng, size, (max(2, spec.width // 3), max(2, spec.height // 3)))
            grain = grain.point(lambda v: 128 + (v - 128) // 4)
            image.paste(ImageChops.soft_light(image, Image.merge("RGB", (grain, grain, grain))))
        after_step(image)

    factor = _contrast_factor(spec.guidance)
    if abs(factor - 1.0) > 1e-3:
        image = ImageEnhance.Contrast(ImageEnhance.Color(image).enhance(factor)).enhance(factor)
    return image


# ---------------------------------------------------------------- image helpers


def _as_rgb(image: Image.Image) -> Image.Image:
    """RGB view of an input image; transparency is flattened onto white rather than dropped."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, (0, 0), rgba)
        return flat
    return image.convert("RGB")


def _as_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """An "L" mask at the init image's size, white = repaint; transparent areas count as keep."""
    if mask.mode in ("RGBA", "LA", "PA") or (mask.mode == "P" and "transparency" in mask.info):
        rgba = mask.convert("RGBA")
        flat = Image.new("L", rgba.size, 0)
        flat.paste(rgba.convert("L"), (0, 0), rgba)
        mask = flat
    elif mask.mode != "L":
        mask = mask.convert("L")
    if mask.size != size:
        mask = mask.resize(size, Image.Resampling.NEAREST)
    return mask


def _low_pass(image: Image.Image) -> Image.Image:
    """Keep only the coarse structure: shrink to about 1/8 and stretch back smoothly."""
    w, h = image.size
    small = image.resize((max(1, w // 8), max(1, h // 8)), Image.Resampling.BOX)
    return small.resize((w, h), Image.Resampling.BICUBIC)


# ---------------------------------------------------------------- the provider


@dataclass
class _Job:
    """A validated request with its defaults resolved."""

    request: GenerationRequest
    model: str
    steps: int
    guidance: float
    strength: float
    upscale_factor: int
    seeds: list[int]
    output_size: tuple[int, int]
    units_per_image: int
    # Filled in by _run, off the event loop: the init as RGB and the mask as "L" at the init's size.
    init: Image.Image | None = None
    mask: Image.Image | None = None

    @property
    def total_units(self) -> int:
        return self.units_per_image * len(self.seeds)

    @property
    def pixels(self) -> int:
        """Pixels touched: every output, plus the source image that gets converted or resized."""
        source = self.request.init_image
        source_pixels = source.width * source.height if source is not None else 0
        return self.output_size[0] * self.output_size[1] * len(self.seeds) + source_pixels


class _Progress:
    """Counts passes across the whole batch, checks for cancellation between them, and hands out a
    copy of the picture at the passes chosen for previews."""

    def __init__(
        self, total: int, progress: ProgressCallback, cancel: CancellationToken, preview_passes: frozenset[int]
    ) -> None:
        self.total = total
        self.done = 0
        self._progress = progress
        self._cancel = cancel
        self._preview_passes = preview_passes
        self._image_index = 0
        self._pass = 0

    def start_image(self, index: int) -> None:
        self._image_index, self._pass = index, 0

    def before(self) -> None:
        self._cancel.raise_if_cancelled()

    def after(self, image: Image.Image | None = None) -> None:
        self.done += 1
        self._pass += 1
        if image is not None and self._pass in self._preview_passes:
            self._progress(self.done, self.total, preview=image.copy(), index=self._image_index)
        else:
            self._progress(self.done, self.total, index=self._image_index)


def _sampling_settings(request: GenerationRequest) -> tuple[int, float, float]:
    """Steps, guidance and strength with their defaults, each refused outside its range."""
    steps = DEFAULT_STEPS if request.steps is None else request.steps
    if not 1 <= steps <= STEPS_MAX:
        raise PermanentError(f"steps must be between 1 and {STEPS_MAX}")
    guidance = DEFAULT_GUIDANCE if request.guidance is None else request.guidance
    if not 0 <= guidance <= GUIDANCE_MAX:
        raise PermanentError(f"guidance must be between 0 and {GUIDANCE_MAX:g}")
    is_variation = request.type == GenerationType.variation
    default_strength = DEFAULT_VARIATION_STRENGTH if is_variation else DEFAULT_IMG2IMG_STRENGTH
    strength = default_strength if request.strength is None else request.strength
    if not 0 <= strength <= 1:
        raise PermanentError("strength must be between 0 and 1")
    return steps, guidance, strength


def _output_size(request: GenerationRequest, factor: int, max_size: int) -> tuple[int, int]:
    """The size of each output: as asked for new pictures, the source's (scaled) for edits."""
    if request.type in (GenerationType.text2img, GenerationType.img2img):
        return (request.width, request.height)
    init = request.init_image
    assert init is not None  # ensure_servable refused edits without a source
    if request.type == GenerationType.upscale:
        out_w, out_h = init.width * factor, init.height * factor
        if max(out_w, out_h) > max_size:
            raise PermanentError(
                f"upscaling {init.width}x{init.height} by {factor} gives {out_w}x{out_h},"
                f" over the {max_size} pixel limit"
            )
        return (out_w, out_h)
    if max(init.size) > max_size:
        raise PermanentError(
            f"the source image is {init.width}x{init.height}; {request.type} works on images"
            f" up to {max_size} pixels a side"
        )
    return init.size


class BuiltinRenderer:
    """A procedural, deterministic renderer that needs nothing installed and no network."""

    name = "builtin"
    kind = "builtin"

    def __init__(self, *, inline_pixel_budget: int = INLINE_PIXEL_BUDGET) -> None:
        self._inline_pixel_budget = inline_pixel_budget
        self._capabilities = ProviderCapabilities(
            types=_ALL_TYPES,
            models=(
                ModelInfo(id=MODEL_ID, label=MODEL_LABEL, types=_ALL_TYPES, max_images=10),
                ModelInfo(id=SOLID_MODEL_ID, label=SOLID_MODEL_LABEL, types=SOLID_TYPES, max_images=10),
            ),
            default_model=MODEL_ID,
            max_images=10,
            min_size=64,
            max_size=2048,
            size_multiple=8,
            upscale_factors=(2, 4),
        )

    def capabilities(self) -> ProviderCapabilities:
        return self._capabilities

    def configuration_problem(self) -> str | None:
        return None

    async def aclose(self) -> None:
        return None

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        job = self._prepare(request)
        cancel.raise_if_cancelled()
        if job.model == SOLID_MODEL_ID or job.pixels <= self._inline_pixel_budget:
            # A flat image is one fill at any size: cheaper than the thread hop.
            images = self._run(job, progress, cancel)
        else:
            images = await anyio.to_thread.run_sync(self._run, job, progress, cancel)
        return GenerationResult(
            images=images,
            model=job.model,
            cost=Decimal(0),
            usage={"steps": job.steps, "images": len(images)},
        )

    # ---- validation

    def _prepare(self, request: GenerationRequest) -> _Job:
        caps = self._capabilities
        ensure_servable(caps, request)
        steps, guidance, strength = _sampling_settings(request)
        factor = request.upscale_factor or caps.upscale_factors[0]
        init = request.init_image
        if init is not None and min(init.size) < 1:
            raise PermanentError("the source image is empty")
        output_size = _output_size(request, factor, caps.max_size)
        units = steps
        model = request.model or caps.default_model
        if (
            model == SOLID_MODEL_ID
            or request.type == GenerationType.upscale
            or (request.type == GenerationType.img2img and strength == 0)
        ):
            units = 1  # an upscale is one resize; img2img at strength 0 answers with the init image

        first_seed = secrets.randbelow(SEED_DRAW_BOUND) if request.seed is None else request.seed
        return _Job(
            request=request,
            model=model,
            steps=steps,
            guidance=guidance,
            strength=strength,
            upscale_factor=factor,
            seeds=[first_seed + i for i in range(request.num_images)],
            output_size=output_size,
            units_per_image=units,
        )

    # ---- rendering (runs inline or in a worker thread)

    def _run(self, job: _Job, progress: ProgressCallback, cancel: CancellationToken) -> list[GeneratedImage]:
        counter = _Progress(job.total_units, progress, cancel, preview_passes(job.steps, job.request.previews))
        request = job.request
        if request.init_image is not None:
            job.init = _as_rgb(request.init_image)
            if request.type == GenerationType.inpaint and request.mask_image is not None:
                job.mask = _as_mask(request.mask_image, job.init.size)
        handler = self._solid if job.model == SOLID_MODEL_ID else {
            GenerationType.text2img: self._text2img,
            GenerationType.img2img: self._img2img,
            GenerationType.inpaint: self._inpaint,
            GenerationType.upscale: self._upscale,
            GenerationType.variation: self._variation,
        }[job.request.type]
        outputs = []
        for index, seed in enumerate(job.seeds):
            counter.start_image(index)
            image = handler(job, seed, counter)
            # Upscaling is the same for every seed, so no seed produced it.
            reported = None if job.request.type == GenerationType.upscale else seed
            outputs.append(GeneratedImage(image=image, seed=reported))
        return outputs

    def _render(self, job: _Job, seed: int, size: tuple[int, int], counter: _Progress) -> Image.Image:
        spec = RenderSpec(
            prompt=job.request.prompt,
            seed=seed,
            width=size[0],
            height=size[1],
            steps=job.steps,
            negative_prompt=job.request.negative_prompt,
            guidance=job.guidance,
        )
        return render_scene(spec, before_step=counter.before, after_step=counter.after)

    def _text2img(self, job: _Job, seed: int, counter: _Progress) -> Image.Image:
        return self._render(job, seed, job.output_size, counter)

    def _solid(self, job: _Job, seed: int, counter: _Progress) -> Image.Image:
        counter.before()
        # The prompt's first palette colour, so "a red square" is red; the seed decides it only
        # for prompts with no words.
        colour = build_palette(job.request.prompt, job.request.negative_prompt, seed)[0]
        image = Image.new("RGB", job.output_size, colour)
        counter.after()
        return image

    def _img2img(self, job: _Job, seed: int, counter: _Progress) -> Image.Image:
        assert job.init is not None
        init = job.init
        if init.size != job.output_size:
            init = init.resize(job.output_size, Image.Resampling.LANCZOS)
        if job.strength == 0:
            counter.before()
            counter.after()
            return init.copy()
        render = self._render(job, seed, job.output_size, counter)
        if job.strength == 1:
            return render
        return Image.blend(init, render, job.strength)

    def _inpaint(self, job: _Job, seed: int, counter: _Progress) -> Image.Image:
        assert job.init is not None and job.mask is not None
        render = self._render(job, seed, job.init.size, counter)
        return Image.composite(render, job.init, job.mask)

    def _upscale(self, job: _Job, seed: int, counter: _Progress) -> Image.Image:
        assert job.init is not None
        counter.before()
        image = job.init.resize(job.output_size, Image.Resampling.LANCZOS)
        # A light unsharp mask restores some crispness that resampling softens.
        image = image.filter(ImageFilter.UnsharpMask(radius=1.2, percent=40, threshold=2))
        counter.after()
        return image

    def _variation(self, job: _Job, seed: int, counter: _Progress) -> Image.Image:
        assert job.init is not None
        init = job.init
        render = self._render(job, seed, init.size, counter)
        # The render's high frequencies (render minus its own low pass, centred on 128) ride on the
        # init's low frequencies; blending with the init by strength keeps some of its own detail.
        detail = ImageChops.subtract(render, _low_pass(render), scale=1.0, offset=128)
        reworked = ImageChops.add(_low_pass(init), detail, scale=1.0, offset=-128)
        return Image.blend(init, reworked, job.strength)
