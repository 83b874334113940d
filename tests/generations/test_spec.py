"""Request rules that need no database: sizes, aspect ratios, prompt options, registry."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from imagestudio.generations.events import ProgressThrottle
from imagestudio.generations.spec import (
    GenerationSpec,
    PromptOptions,
    compose_prompt,
    parse_aspect_ratio,
    resolve_size,
)
from imagestudio.providers.base import GenerationType, ModelInfo, ProviderCapabilities, UnsupportedRequest
from imagestudio.providers.registry import ProviderRegistry, UnknownProvider
from tests.generations.scripted import ScriptedProvider

TYPES = frozenset(GenerationType)
FREE = ModelInfo(id="free", label="Free", types=TYPES)
LISTED = ModelInfo(id="listed", label="Listed", types=TYPES, sizes=((1024, 1024), (1792, 1024), (1024, 1792)))
CAPS = ProviderCapabilities(types=TYPES, models=(FREE, LISTED), default_model="free", min_size=64, max_size=2048)


def spec(**fields) -> GenerationSpec:
    return GenerationSpec(**fields)


def test_explicit_sizes_win() -> None:
    assert resolve_size(spec(width=768, height=512), CAPS, FREE, None) == (768, 512, "3:2")
    assert resolve_size(spec(width=768, height=512, aspect_ratio="16:9"), CAPS, FREE, None)[:2] == (768, 512)


def test_aspect_ratio_gives_about_512_squared_pixels_in_that_shape() -> None:
    width, height, ratio = resolve_size(spec(aspect_ratio="16:9"), CAPS, FREE, None)
    assert ratio == "16:9" and width % 8 == 0 and height % 8 == 0
    assert abs(width / height - 16 / 9) < 0.03
    assert 0.9 < width * height / 512**2 < 1.1
    assert resolve_size(spec(), CAPS, FREE, None) == (512, 512, "1:1")


def test_one_side_and_a_ratio_give_the_other_side() -> None:
    assert resolve_size(spec(width=1024, aspect_ratio="2:1"), CAPS, FREE, None)[:2] == (1024, 512)
    assert resolve_size(spec(height=256, aspect_ratio="1:2"), CAPS, FREE, None)[:2] == (128, 256)


@pytest.mark.parametrize(("fields", "missing"), [({"width": 520}, "height"), ({"height": 520}, "width")])
@pytest.mark.parametrize("kind", ["text2img", "img2img"])
def test_one_side_alone_is_refused_naming_the_missing_side(fields: dict, missing: str, kind: str) -> None:
    # Before, `width: 520` alone silently rendered a 512 square.
    with pytest.raises(UnsupportedRequest) as refused:
        resolve_size(spec(type=kind, **fields), CAPS, FREE, (640, 480))
    assert refused.value.field == missing
    assert "aspect_ratio" in refused.value.message


def test_models_with_listed_sizes_get_the_closest_shape() -> None:
    assert resolve_size(spec(aspect_ratio="16:9"), CAPS, LISTED, None)[:2] == (1792, 1024)
    assert resolve_size(spec(aspect_ratio="9:16"), CAPS, LISTED, None)[:2] == (1024, 1792)
    assert resolve_size(spec(), CAPS, LISTED, None)[:2] == (1024, 1024)


def test_edits_follow_the_source_and_upscales_multiply_it() -> None:
    assert resolve_size(spec(type="img2img"), CAPS, FREE, (640, 427))[:2] == (640, 424)
    # Too large a source is scaled into bounds, keeping its shape.
    assert resolve_size(spec(type="variation"), CAPS, FREE, (4000, 2000))[:2] == (2048, 1024)
    assert resolve_size(spec(type="upscale", upscale_factor=4), CAPS, FREE, (100, 50))[:2] == (400, 200)


@pytest.mark.parametrize("value", ["16:0", "wide", "1:100", "", "16:9:1"])
def test_bad_aspect_ratios_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        parse_aspect_ratio(value)
    with pytest.raises(ValidationError):
        GenerationSpec(aspect_ratio=value)


@pytest.mark.parametrize(
    "fields",
    [
        {"num_images": 0},
        {"num_images": 11},
        {"strength": 1.5},
        {"seed": -1},
        {"steps": 0},
        {"prompt": "x" * 4001},
        {"steps": 151},
        {"guidance": 30.5},
        {"width": 4097},
        {"priority": 11},
        {"seed": 2**53},
        {"upscale_factor": 8},
        {"reference_asset_ids": [f"00000000-0000-0000-0000-00000000000{i}" for i in range(5)]},
        {"reference_asset_ids": ["00000000-0000-0000-0000-000000000001"] * 2},
        {"unknown_field": 1},
        {"prompt_options": {"mood": "happy"}},
    ],
)
def test_out_of_range_fields_are_refused(fields: dict) -> None:
    with pytest.raises(ValidationError):
        GenerationSpec(**fields)


def test_prompt_options_extend_the_prompt() -> None:
    options = PromptOptions(shot_type="wide shot", location="Lisbon", weather="foggy")
    assert compose_prompt("a tram.", options) == "a tram, wide shot, set in Lisbon, foggy weather"
    assert compose_prompt("a tram", PromptOptions(custom=True)) is None


def test_progress_is_throttled_but_the_final_step_is_kept() -> None:
    now = [0.0]
    throttle = ProgressThrottle(0.25, clock=lambda: now[0])
    assert [throttle.report(step, 20) for step in range(1, 21)] == [False] * 20
    assert throttle.unwritten() == (20, 20)
    now[0] = 0.3
    assert throttle.report(5, 20) is True
    assert throttle.report(6, 20) is False  # a write is already under way
    step, total = throttle.take()
    throttle.wrote(step, total)
    assert throttle.unwritten() is None
    throttle.report(7, 20)
    assert throttle.unwritten() == (7, 20)


def test_registry_lookups() -> None:
    registry = ProviderRegistry(default="scripted")
    provider = ScriptedProvider()
    registry.register(provider)
    with pytest.raises(ValueError):
        registry.register(ScriptedProvider())
    with pytest.raises(TypeError):
        registry.register(object())  # type: ignore[arg-type]
    with pytest.raises(UnknownProvider):
        registry.get("missing")
    assert registry.get("scripted") is provider and registry.default_name == "scripted"
    provider.problem = "needs a key"
    assert registry.problem("scripted") == "needs a key"
    assert registry.problem("missing") is not None
    disabled = ProviderRegistry()
    disabled.register(ScriptedProvider(), enabled=False)
    assert disabled.problem("scripted") == "provider 'scripted' is disabled"
    with pytest.raises(UnknownProvider):
        _ = disabled.default_name
