"""Every limit on a generation request, in one place.

The API schema, the engine's spec, the command line, the builtin provider, the table's CHECKs and the
table in docs/api.md all read these values; a test keeps the docs table equal to `REQUEST_LIMITS`.
"""

from __future__ import annotations

from dataclasses import dataclass

PROMPT_MAX_LENGTH = 4000
NEGATIVE_PROMPT_MAX_LENGTH = 2000
NUM_IMAGES_MIN = 1
NUM_IMAGES_MAX = 10
SIDE_MIN = 64
SIDE_MAX = 4096
STEPS_MIN = 1
STEPS_MAX = 150
GUIDANCE_MIN = 0.0
GUIDANCE_MAX = 30.0
STRENGTH_MIN = 0.0
STRENGTH_MAX = 1.0
# Seeds fit in a JavaScript number without loss.
SEED_MIN = 0
SEED_MAX = 2**53 - 1
# Seeds the studio draws itself: 32 bits, the range every seeded backend accepts as is.
SEED_DRAW_BOUND = 2**32
UPSCALE_FACTORS = (2, 4)
REFERENCES_MAX = 4
PRIORITY_MIN = -10
PRIORITY_MAX = 10
PROVIDER_NAME_MAX_LENGTH = 64
MODEL_ID_MAX_LENGTH = 200
SCHEDULER_MAX_LENGTH = 64
PROMPT_OPTION_MAX_LENGTH = 100
LOCATION_MAX_LENGTH = 200
EXTRA_PARAMS_MAX = 16
# Intermediate pictures a generation may show per output while it runs (`partial_images`), and so the
# highest number a generation's previews are counted up to.
PREVIEWS_PER_IMAGE_MAX = 3
PREVIEW_NUMBER_MAX = PREVIEWS_PER_IMAGE_MAX * NUM_IMAGES_MAX - 1
IDEMPOTENCY_KEY_MAX_LENGTH = 200
# Images in one zip download of a selection.
ARCHIVE_IMAGES_MAX = 100
ASPECT_RATIO_PATTERN = r"^[1-9][0-9]?:[1-9][0-9]?$"
# A project's description, and a session's context (read by every language-model call of the session).
PROJECT_DESCRIPTION_MAX_LENGTH = 10_000
SESSION_CONTEXT_MAX_LENGTH = 4_000
# Aspect ratios wider than this either way are refused: they make unusable strips.
ASPECT_RATIO_MAX = 8.0


@dataclass(frozen=True)
class Limit:
    """One documented bound: `field` as the API names it, inclusive `low`..`high`, and what it counts."""

    field: str
    low: int | float
    high: int | float
    unit: str
    integer: bool = True

    def render(self, value: int | float) -> str:
        return str(int(value)) if self.integer else f"{value:g}"


REQUEST_LIMITS: tuple[Limit, ...] = (
    Limit("prompt", 0, PROMPT_MAX_LENGTH, "characters"),
    Limit("negative_prompt", 0, NEGATIVE_PROMPT_MAX_LENGTH, "characters"),
    Limit("num_images", NUM_IMAGES_MIN, NUM_IMAGES_MAX, "images"),
    Limit("width", SIDE_MIN, SIDE_MAX, "pixels"),
    Limit("height", SIDE_MIN, SIDE_MAX, "pixels"),
    Limit("params.steps", STEPS_MIN, STEPS_MAX, "steps"),
    Limit("params.guidance", GUIDANCE_MIN, GUIDANCE_MAX, "scale", integer=False),
    Limit("params.strength", STRENGTH_MIN, STRENGTH_MAX, "fraction of the source that may change", integer=False),
    Limit("params.seed", SEED_MIN, SEED_MAX, "(2^53 - 1, exact in JavaScript)"),
    Limit("params.scheduler", 0, SCHEDULER_MAX_LENGTH, "characters"),
    Limit("reference_asset_ids", 0, REFERENCES_MAX, "images"),
    Limit("priority", PRIORITY_MIN, PRIORITY_MAX, "(higher runs first)"),
    Limit("provider", 0, PROVIDER_NAME_MAX_LENGTH, "characters"),
    Limit("model", 0, MODEL_ID_MAX_LENGTH, "characters"),
    Limit("prompt_options.location", 0, LOCATION_MAX_LENGTH, "characters"),
    Limit("prompt_options.* (the others)", 0, PROMPT_OPTION_MAX_LENGTH, "characters"),
    Limit("params.extra", 0, EXTRA_PARAMS_MAX, "entries"),
    Limit("Idempotency-Key (header)", 1, IDEMPOTENCY_KEY_MAX_LENGTH, "printable characters"),
)


def limits_table() -> str:
    """The markdown table of REQUEST_LIMITS that docs/api.md carries."""
    lines = ["| field | from | to | unit |", "|---|---|---|---|"]
    for limit in REQUEST_LIMITS:
        lines.append(f"| `{limit.field}` | {limit.render(limit.low)} | {limit.render(limit.high)} | {limit.unit} |")
    return "\n".join(lines)


# UI code (chat turns in mode "ui"): one self-contained HTML document at most this large, and what a
# language model may spend writing it.
UI_CODE_MAX_BYTES = 256 * 1024
UI_CODE_MAX_TOKENS = 8192
