"""The prompt builder's choices (seed 001): offered in the composer, sent as `prompt_options`."""

from __future__ import annotations

SHOT_TYPES = (
    "Extreme close-up",
    "Close-up",
    "Medium shot",
    "Full shot",
    "Wide shot",
    "Establishing shot",
    "Over-the-shoulder",
    "Macro",
    "Portrait",
)
CAMERA_ANGLES = (
    "Eye level",
    "Low angle",
    "High angle",
    "Bird's-eye view",
    "Worm's-eye view",
    "Dutch angle",
    "Overhead",
    "Aerial",
    "Point of view",
)
STYLES = (
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
LOCATIONS = (
    "City street",
    "Forest",
    "Beach",
    "Desert",
    "Mountains",
    "Studio",
    "Cozy interior",
    "Outer space",
    "Underwater",
)
LIGHTING = (
    "Natural light",
    "Golden hour",
    "Blue hour",
    "Studio lighting",
    "Soft light",
    "Dramatic lighting",
    "Backlit",
    "Neon lighting",
    "Candlelight",
)
WEATHER = ("Clear", "Sunny", "Cloudy", "Overcast", "Rain", "Snow", "Fog", "Storm", "Windy")

CHOICES = {
    "shot_types": SHOT_TYPES,
    "camera_angles": CAMERA_ANGLES,
    "styles": STYLES,
    "locations": LOCATIONS,
    "lighting": LIGHTING,
    "weather": WEATHER,
}
