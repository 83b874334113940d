"""The built-in describer: measured captions and template enhancement, labelled as not AI."""

from __future__ import annotations

import pytest
from PIL import Image

from imagestudio.language.base import CaptionStyle
from imagestudio.language.builtin import NOT_AI_NOTE, BuiltinLanguageModel, colour_name, orientation
from imagestudio.language.tasks import template_prompt
from tests.language.conformance import LanguageConformance

pytestmark = pytest.mark.anyio


class TestBuiltinConformance(LanguageConformance):
    chats = False
    by_ai = False

    @pytest.fixture
    def model(self) -> BuiltinLanguageModel:
        return BuiltinLanguageModel()


def _two_tone(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    image = Image.new("RGB", size, bottom)
    image.paste(top, (0, 0, size[0], size[1] // 3))
    return image


async def test_a_caption_states_what_was_measured() -> None:
    image = _two_tone((1024, 768), (250, 250, 250), (20, 40, 160))
    short = await BuiltinLanguageModel().describe(image, CaptionStyle.short)
    assert short.text == (
        f"A 1024x768 landscape image, mostly blue and white, evenly lit with high contrast. {NOT_AI_NOTE}"
    )
    assert short.by_ai is False and short.model == "measured" and short.usage.total_tokens == 0
    detailed = await BuiltinLanguageModel().describe(image, CaptionStyle.detailed)
    assert "Mean brightness" in detailed.text and NOT_AI_NOTE in detailed.text
    as_prompt = await BuiltinLanguageModel().describe(image, CaptionStyle.prompt)
    assert as_prompt.text == "a landscape picture in blue and white tones, evenly lit, high contrast"


async def test_brightness_and_contrast_follow_the_picture() -> None:
    flat_bright = await BuiltinLanguageModel().describe(Image.new("RGB", (50, 80), (245, 230, 90)), CaptionStyle.short)
    assert "portrait image, mostly yellow, bright with low contrast" in flat_bright.text
    dark = await BuiltinLanguageModel().describe(Image.new("L", (64, 64), 10), CaptionStyle.short)
    assert "square image, mostly black, dark with low contrast" in dark.text


def test_colour_names() -> None:
    assert colour_name(200, 30, 30) == "red"
    assert colour_name(30, 160, 60) == "green"
    assert colour_name(120, 70, 20) == "brown"
    assert colour_name(128, 128, 128) == "grey"
    assert colour_name(250, 180, 200) == "light pink"
    assert orientation(100, 100) == "square" and orientation(90, 160) == "portrait"


async def test_enhancement_is_the_template_and_says_so() -> None:
    options = {
        "shot_type": "close-up",
        "camera_angle": "low angle",
        "style": "watercolor",
        "lighting": "golden hour",
        "weather": "rainy",
        "location": "a harbour",
        "custom": True,
    }
    result = await BuiltinLanguageModel().enhance("a cat on a roof.", options)
    assert result.text == (
        "a cat on a roof, close-up, low angle, watercolor style, set in a harbour, golden hour lighting, rainy weather"
    )
    assert result.by_ai is False and result.model == "template"


def test_the_template_keeps_a_prompt_without_options() -> None:
    assert template_prompt("  a red fox ", {}) == "a red fox"
    assert template_prompt("a fox", {"shot_type": "wide shot", "style": ""}) == "a fox, wide shot"
    assert template_prompt("", {"lighting": "neon"}) == "neon lighting"
