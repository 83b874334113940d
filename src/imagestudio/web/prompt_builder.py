"""The prompt builder's choices (seed 001): offered in the composer, sent as `prompt_options`.

Each choice is (value, label). Values are lower-case phrases because the server folds them into the
prompt as written ("{shot}, {angle}, {style} style, set in {location}, {lighting} lighting, {weather}
weather"), so they have to read well mid-sentence.
"""

from __future__ import annotations

Choice = tuple[str, str]


def _choices(*labels: str) -> tuple[Choice, ...]:
    return tuple((label.lower(), label) for label in labels)


SHOT_TYPES = _choices(
    "Extreme close-up",
    "Close-up",
    "Medium shot",
    "Full shot",
    "Wide shot",
    "Establishing shot",
    "Over-the-shoulder shot",
    "Macro shot",
    "Portrait",
)
CAMERA_ANGLES = _choices(
    "Eye level",
    "Low angle",
    "High angle",
    "Bird's-eye view",
    "Worm's-eye view",
    "Dutch angle",
    "Overhead",
    "Aerial view",
    "Point of view",
)
STYLES = _choices(
    "Photorealistic",
    "Cinematic",
    "Digital art",
    "Oil painting",
    "Watercolor",
    "Anime",
    "3D render",
    "Pencil sketch",
    "Pixel art",
    "Comic book",
    "Minimalist",
    "Surreal",
    "Vintage film",
)
# Free text in the page; these are suggestions, phrased to follow "set in".
LOCATIONS = (
    "a city street",
    "a forest",
    "a beach",
    "a desert",
    "the mountains",
    "a studio",
    "a cozy interior",
    "outer space",
    "the deep sea",
)
LIGHTING = _choices(
    "Natural",
    "Soft",
    "Golden hour",
    "Blue hour",
    "Studio",
    "Dramatic",
    "Neon",
    "Candle",
    "Moody",
)
WEATHER = _choices("Clear", "Sunny", "Cloudy", "Overcast", "Rainy", "Snowy", "Foggy", "Stormy", "Windy")

CHOICES = {
    "shot_types": SHOT_TYPES,
    "camera_angles": CAMERA_ANGLES,
    "styles": STYLES,
    "locations": LOCATIONS,
    "lighting": LIGHTING,
    "weather": WEATHER,
}
