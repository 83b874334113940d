"""The built-in renderer: the shared conformance suite, then its own pixel-level properties."""

from __future__ import annotations

import dataclasses
import statistics
import threading
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageStat

from imagestudio.models.enums import IMAGE_TYPES
from imagestudio.providers.base import (
    CancellationToken,
    GenerationCanceled,
    GenerationRequest,
    GenerationResult,
    GenerationType,
    PermanentError,
    Provider,
)
from imagestudio.providers.builtin import (
    DEFAULT_STEPS,
    MODEL_ID,
    MODEL_LABEL,
    SOLID_MODEL_ID,
    SOLID_MODEL_LABEL,
    BuiltinRenderer,
    RenderSpec,
    build_palette,
    preview_passes,
    render_scene,
)
from tests.providers.conformance import ProgressRecorder, ProviderConformance, make_init_image, make_mask

pytestmark = pytest.mark.anyio

PROMPTS = (
    "a red fox in the snow",
    "a lighthouse on a cliff",
    "sunset over the ocean",
    "neon city at night",
    "a cat",
    "portrait of an old man",
)


class TestBuiltinConformance(ProviderConformance):
    exercised_types = IMAGE_TYPES

    @pytest.fixture
    def provider(self) -> Provider:
        return BuiltinRenderer()


# ---------------------------------------------------------------- helpers


@pytest.fixture
def renderer() -> BuiltinRenderer:
    return BuiltinRenderer()


def request(**fields: Any) -> GenerationRequest:
    defaults: dict[str, Any] = {
        "type": GenerationType.text2img,
        "prompt": "a lighthouse on a cliff",
        "model": MODEL_ID,
        "width": 64,
        "height": 64,
        "seed": 7,
    }
    return GenerationRequest(**(defaults | fields))


async def generate(
    renderer: BuiltinRenderer,
    progress: ProgressRecorder | None = None,
    cancel: CancellationToken | None = None,
    **fields: Any,
) -> GenerationResult:
    return await renderer.generate(request(**fields), progress or ProgressRecorder(), cancel or CancellationToken())


async def image(renderer: BuiltinRenderer, **fields: Any) -> Image.Image:
    result = await generate(renderer, **fields)
    assert len(result.images) == 1
    return result.images[0].image


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel value, 0..255."""
    assert a.size == b.size
    return statistics.mean(ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).mean)


def channel_means(picture: Image.Image) -> tuple[float, float, float]:
    r, g, b = ImageStat.Stat(picture).mean
    return r, g, b


def contrast(picture: Image.Image) -> float:
    return statistics.mean(ImageStat.Stat(picture).stddev)


# ---------------------------------------------------------------- identity


async def test_identity(renderer: BuiltinRenderer) -> None:
    caps = renderer.capabilities()
    assert (renderer.name, renderer.kind) == ("builtin", "builtin")
    assert [(m.id, m.label) for m in caps.models] == [(MODEL_ID, MODEL_LABEL), (SOLID_MODEL_ID, SOLID_MODEL_LABEL)]
    assert caps.default_model == MODEL_ID
    assert all("not an AI model" in m.label for m in caps.models)
    assert caps.types == IMAGE_TYPES
    assert (caps.max_images, caps.min_size, caps.max_size, caps.size_multiple) == (10, 64, 2048, 8)
    assert caps.upscale_factors == (2, 4)
    assert caps.honours_seed and caps.honours_negative_prompt and caps.honours_strength and caps.supports_mask
    assert renderer.configuration_problem() is None


# ---------------------------------------------------------------- previews


def test_preview_passes_are_spread_and_never_the_last() -> None:
    assert preview_passes(10, 2) == {3, 7}
    assert preview_passes(8, 3) == {2, 4, 6}
    assert preview_passes(4, 5) == {1, 2, 3}
    assert preview_passes(1, 3) == frozenset()
    assert preview_passes(30, 0) == frozenset()


async def test_previews_are_the_pictures_in_progress(renderer: BuiltinRenderer) -> None:
    recorder = ProgressRecorder()
    request = GenerationRequest(
        type=GenerationType.text2img,
        prompt="a red fox",
        model=MODEL_ID,
        width=96,
        height=64,
        num_images=2,
        steps=10,
        seed=3,
        previews=2,
    )
    result = await renderer.generate(request, recorder, CancellationToken())
    assert [(index, step) for index, step, _ in recorder.previews] == [(0, 3), (0, 7), (1, 13), (1, 17)]
    pictures = [picture for _, _, picture in recorder.previews]
    assert all(picture.size == (96, 64) for picture in pictures)
    # Each is the render as it stood: later passes change it, and the first image's last preview is
    # not its finished picture.
    assert pictures[0].tobytes() != pictures[1].tobytes()
    assert pictures[1].tobytes() != result.images[0].image.tobytes()
    # Asking for previews changes nothing in the result.
    plain = await renderer.generate(dataclasses.replace(request, previews=0), ProgressRecorder(), CancellationToken())
    assert [i.image.tobytes() for i in plain.images] == [i.image.tobytes() for i in result.images]


async def test_no_previews_unless_asked(renderer: BuiltinRenderer) -> None:
    recorder = ProgressRecorder()
    request = GenerationRequest(type=GenerationType.text2img, prompt="x", model=MODEL_ID, width=64, height=64, steps=6)
    await renderer.generate(request, recorder, CancellationToken())
    assert recorder.previews == [] and len(recorder.calls) == 6


# ---------------------------------------------------------------- text2img


@pytest.mark.parametrize("size", [(64, 64), (96, 64), (64, 200), (136, 72)])
async def test_output_is_rgb_at_exactly_the_requested_size(renderer: BuiltinRenderer, size: tuple[int, int]) -> None:
    picture = await image(renderer, width=size[0], height=size[1])
    assert picture.mode == "RGB"
    assert picture.size == size


async def test_same_prompt_and_seed_give_identical_bytes() -> None:
    # Two separate instances: nothing is cached between them.
    for fields in ({"seed": 1}, {"seed": 99, "width": 96, "height": 72, "steps": 7, "guidance": 12.0}):
        first = await image(BuiltinRenderer(), **fields)
        second = await image(BuiltinRenderer(), **fields)
        assert first.tobytes() == second.tobytes()


async def test_different_prompts_give_clearly_different_pictures(renderer: BuiltinRenderer) -> None:
    for i, prompt in enumerate(PROMPTS):
        for other in PROMPTS[i + 1 :]:
            a = await image(renderer, prompt=prompt, seed=3)
            b = await image(renderer, prompt=other, seed=3)
            assert mean_abs_diff(a, b) > 20, (prompt, other)


async def test_prompt_words_steer_the_colours(renderer: BuiltinRenderer) -> None:
    for seed in range(4):
        r, _, b = channel_means(await image(renderer, prompt="deep ocean", seed=seed))
        assert b > r + 40, ("ocean should be blue", r, b)
        r, _, b = channel_means(await image(renderer, prompt="sunset", seed=seed))
        assert r > b + 40, ("sunset should be warm", r, b)
        _, g, _ = channel_means(await image(renderer, prompt="forest", seed=seed))
        r, _, b = channel_means(await image(renderer, prompt="forest", seed=seed))
        assert g > r and g > b, "forest should be green"


async def test_case_and_spacing_of_the_prompt_do_not_matter(renderer: BuiltinRenderer) -> None:
    a = await image(renderer, prompt="Sunset over   the Ocean")
    b = await image(renderer, prompt="sunset over the ocean")
    assert a.tobytes() == b.tobytes()


async def test_different_seeds_give_different_pictures(renderer: BuiltinRenderer) -> None:
    for prompt in PROMPTS:
        a = await image(renderer, prompt=prompt, seed=1)
        b = await image(renderer, prompt=prompt, seed=2)
        assert mean_abs_diff(a, b) > 8, prompt


async def test_empty_prompt_still_renders_a_varied_picture(renderer: BuiltinRenderer) -> None:
    a = await image(renderer, prompt="", seed=1)
    b = await image(renderer, prompt="", seed=2)
    assert contrast(a) > 10 and contrast(b) > 10
    assert mean_abs_diff(a, b) > 8


async def test_negative_prompt_changes_the_picture_deterministically(renderer: BuiltinRenderer) -> None:
    plain = await image(renderer, prompt="sunset over the ocean", seed=5)
    without_orange = await image(renderer, prompt="sunset over the ocean", seed=5, negative_prompt="orange")
    again = await image(renderer, prompt="sunset over the ocean", seed=5, negative_prompt="orange")
    assert without_orange.tobytes() == again.tobytes()
    # Naming a colour removes the palette colours near it: the warm oranges go.
    assert channel_means(without_orange)[0] < channel_means(plain)[0] - 20
    # A word with no colour meaning still changes something.
    for prompt in PROMPTS:
        base = await image(renderer, prompt=prompt)
        other = await image(renderer, prompt=prompt, negative_prompt="blurry, low quality")
        assert mean_abs_diff(base, other) > 5, prompt


def test_negative_prompt_never_empties_the_palette() -> None:
    every_colour = "red orange yellow green blue purple pink brown black white grey teal cyan magenta silver"
    palette = build_palette("sunset over the ocean", every_colour, seed=1)
    assert len(palette) >= 2
    spec = RenderSpec(prompt="sunset", negative_prompt=every_colour, seed=1, width=64, height=64)
    picture = render_scene(spec)
    assert contrast(picture) > 5


async def test_steps_decide_the_passes_and_the_detail(renderer: BuiltinRenderer) -> None:
    for steps in (1, 5, DEFAULT_STEPS, 40):
        recorder = ProgressRecorder()
        await generate(renderer, progress=recorder, steps=steps)
        assert recorder.calls == [(i, steps) for i in range(1, steps + 1)]
    few = await image(renderer, steps=2)
    many = await image(renderer, steps=40)
    assert mean_abs_diff(few, many) > 5
    # Default steps when none are given.
    assert (await image(renderer)).tobytes() == (await image(renderer, steps=DEFAULT_STEPS)).tobytes()


async def test_guidance_scales_contrast(renderer: BuiltinRenderer) -> None:
    for prompt in PROMPTS:
        low = contrast(await image(renderer, prompt=prompt, guidance=1.0))
        usual = contrast(await image(renderer, prompt=prompt, guidance=7.5))
        high = contrast(await image(renderer, prompt=prompt, guidance=15.0))
        assert low < usual < high, (prompt, low, usual, high)


async def test_batch_uses_consecutive_seeds(renderer: BuiltinRenderer) -> None:
    result = await generate(renderer, num_images=3, seed=40)
    assert [output.seed for output in result.images] == [40, 41, 42]
    for output in result.images:
        single = await image(renderer, seed=output.seed)
        assert output.image.tobytes() == single.tobytes()


async def test_missing_seed_is_drawn_reported_and_reproducible(renderer: BuiltinRenderer) -> None:
    result = await generate(renderer, seed=None, num_images=2)
    first, second = (output.seed for output in result.images)
    assert isinstance(first, int) and second == first + 1
    replay = await image(renderer, seed=first)
    assert replay.tobytes() == result.images[0].image.tobytes()


def test_composition_survives_a_size_change() -> None:
    small = render_scene(RenderSpec(prompt="a cat", seed=4, width=64, height=64))
    large = render_scene(RenderSpec(prompt="a cat", seed=4, width=256, height=256))
    other = render_scene(RenderSpec(prompt="a cat", seed=5, width=64, height=64))
    shrunk = large.resize(small.size, Image.Resampling.BOX)
    assert mean_abs_diff(shrunk, small) < mean_abs_diff(other, small) / 2


# ---------------------------------------------------------------- img2img


async def test_img2img_strength_zero_returns_the_init(renderer: BuiltinRenderer) -> None:
    init = make_init_image((64, 64))
    same = await image(renderer, type=GenerationType.img2img, init_image=init, strength=0.0)
    assert same.tobytes() == init.tobytes()
    # A different requested size gets the init resized with LANCZOS.
    resized = await image(renderer, type=GenerationType.img2img, init_image=init, strength=0.0, width=128, height=96)
    assert resized.tobytes() == init.resize((128, 96), Image.Resampling.LANCZOS).tobytes()


async def test_img2img_strength_one_is_the_text2img_render(renderer: BuiltinRenderer) -> None:
    init = make_init_image((64, 64))
    full = await image(renderer, type=GenerationType.img2img, init_image=init, strength=1.0)
    text_only = await image(renderer)
    assert full.tobytes() == text_only.tobytes()


@pytest.mark.parametrize("strength", [0.5, None])
async def test_img2img_between_blends(renderer: BuiltinRenderer, strength: float | None) -> None:
    init = make_init_image((64, 64))
    text_only = await image(renderer)
    blended = await image(renderer, type=GenerationType.img2img, init_image=init, strength=strength)
    apart = mean_abs_diff(init, text_only)
    assert mean_abs_diff(blended, init) < apart
    assert mean_abs_diff(blended, text_only) < apart
    expected = Image.blend(init, text_only, 0.6 if strength is None else strength)
    assert blended.tobytes() == expected.tobytes()


# ---------------------------------------------------------------- inpaint


def _masked_split(a: Image.Image, b: Image.Image, mask: Image.Image) -> tuple[int, float]:
    """(changed pixels outside the mask, mean difference inside it)."""
    difference = ImageChops.difference(a, b)
    changed = Image.eval(ImageChops.lighter(*difference.split()[:2]), lambda v: 255 if v else 0)
    changed = ImageChops.lighter(changed, Image.eval(difference.getchannel("B"), lambda v: 255 if v else 0))
    outside = ImageChops.multiply(changed, ImageChops.invert(mask))
    changed_outside = round(ImageStat.Stat(outside).sum[0] / 255)
    return changed_outside, statistics.mean(ImageStat.Stat(difference, mask).mean)


async def test_inpaint_changes_only_masked_pixels(renderer: BuiltinRenderer) -> None:
    for size in ((64, 64), (120, 80)):
        init = make_init_image(size)
        mask = make_mask(size)
        out = await image(renderer, type=GenerationType.inpaint, init_image=init, mask_image=mask)
        assert out.size == size
        changed_outside, inside_difference = _masked_split(out, init, mask)
        assert changed_outside == 0
        assert inside_difference > 20
        # The masked pixels are the text2img render at the init's size.
        render = await image(renderer, width=size[0], height=size[1])
        assert Image.composite(render, init, mask).tobytes() == out.tobytes()


async def test_inpaint_with_empty_or_full_mask(renderer: BuiltinRenderer) -> None:
    init = make_init_image((64, 64))
    keep_all = await image(
        renderer, type=GenerationType.inpaint, init_image=init, mask_image=Image.new("L", (64, 64), 0)
    )
    assert keep_all.tobytes() == init.tobytes()
    repaint_all = await image(
        renderer, type=GenerationType.inpaint, init_image=init, mask_image=Image.new("L", (64, 64), 255)
    )
    assert repaint_all.tobytes() == (await image(renderer)).tobytes()


async def test_inpaint_accepts_other_mask_modes_and_sizes(renderer: BuiltinRenderer) -> None:
    init = make_init_image((64, 64))
    reference = await image(renderer, type=GenerationType.inpaint, init_image=init, mask_image=make_mask((64, 64)))
    # A 1-bit mask, and one at twice the size, mean the same region.
    as_bits = make_mask((64, 64)).convert("1")
    twice = make_mask((128, 128))
    for mask in (as_bits, twice):
        out = await image(renderer, type=GenerationType.inpaint, init_image=init, mask_image=mask)
        assert out.tobytes() == reference.tobytes()
    # A painted RGBA mask: transparent means keep, opaque white strokes mean repaint.
    painted = Image.new("RGBA", (64, 64), (255, 255, 255, 0))
    ImageDraw.Draw(painted).rectangle((16, 16, 47, 47), fill=(255, 255, 255, 255))
    out = await image(renderer, type=GenerationType.inpaint, init_image=init, mask_image=painted)
    assert out.tobytes() == reference.tobytes()


async def test_transparent_init_is_flattened_onto_white(renderer: BuiltinRenderer) -> None:
    init = Image.new("RGBA", (64, 64), (10, 20, 30, 0))
    ImageDraw.Draw(init).rectangle((0, 0, 31, 63), fill=(200, 0, 0, 255))
    out = await image(renderer, type=GenerationType.img2img, init_image=init, strength=0.0)
    assert out.getpixel((5, 5)) == (200, 0, 0)
    assert out.getpixel((50, 5)) == (255, 255, 255)


# ---------------------------------------------------------------- upscale


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("size", [(64, 64), (96, 64)])
async def test_upscale_resamples_by_the_factor(renderer: BuiltinRenderer, factor: int, size: tuple[int, int]) -> None:
    init = make_init_image(size)
    result = await generate(renderer, type=GenerationType.upscale, init_image=init, upscale_factor=factor)
    up = result.images[0].image
    assert up.size == (size[0] * factor, size[1] * factor)
    assert result.images[0].seed is None, "no seed shapes an upscale"
    assert mean_abs_diff(up.resize(size, Image.Resampling.BOX), init) < 3
    # Real resampling, not pixel repetition: a nearest-neighbour enlargement differs along edges.
    assert up.tobytes() != init.resize(up.size, Image.Resampling.NEAREST).tobytes()


async def test_upscale_defaults_to_two(renderer: BuiltinRenderer) -> None:
    up = await image(renderer, type=GenerationType.upscale, init_image=make_init_image((64, 72)))
    assert up.size == (128, 144)


async def test_upscale_past_the_size_limit_is_refused(renderer: BuiltinRenderer) -> None:
    big = Image.new("RGB", (600, 64), (1, 2, 3))
    with pytest.raises(PermanentError, match="2048"):
        await generate(renderer, type=GenerationType.upscale, init_image=big, upscale_factor=4)
    ok = await image(renderer, type=GenerationType.upscale, init_image=Image.new("RGB", (512, 16)), upscale_factor=4)
    assert ok.size == (2048, 64)


# ---------------------------------------------------------------- variation


async def test_variation_stays_close_to_its_init(renderer: BuiltinRenderer) -> None:
    init = make_init_image((72, 64))
    for prompt in ("", "a lighthouse on a cliff", "neon city at night"):
        first = await image(renderer, type=GenerationType.variation, init_image=init, prompt=prompt, seed=1)
        second = await image(renderer, type=GenerationType.variation, init_image=init, prompt=prompt, seed=2)
        unrelated = await image(renderer, prompt=prompt, seed=1, width=72, height=64)
        assert first.size == init.size
        assert mean_abs_diff(first, init) < mean_abs_diff(unrelated, init) / 2
        assert mean_abs_diff(first, init) > 2, "a variation is not a copy"
        assert mean_abs_diff(first, second) > 2, "seeds give different variations"
        replay = await image(renderer, type=GenerationType.variation, init_image=init, prompt=prompt, seed=1)
        assert replay.tobytes() == first.tobytes()


async def test_variation_strength_moves_away_from_the_init(renderer: BuiltinRenderer) -> None:
    init = make_init_image((64, 64))
    distances = [
        mean_abs_diff(await image(renderer, type=GenerationType.variation, init_image=init, strength=s), init)
        for s in (0.0, 0.3, 0.6, 1.0)
    ]
    assert distances[0] == 0
    assert distances == sorted(distances) and len(set(distances)) == 4


# ---------------------------------------------------------------- cancel, threads


async def test_cancel_stops_between_steps(renderer: BuiltinRenderer) -> None:
    cancel = CancellationToken()
    recorder = ProgressRecorder(on_call=lambda step, total: cancel.cancel() if step == 3 else None)
    with pytest.raises(GenerationCanceled):
        await generate(renderer, progress=recorder, cancel=cancel, num_images=2)
    assert [step for step, _ in recorder.calls] == [1, 2, 3]
    assert recorder.calls[-1][1] == 2 * DEFAULT_STEPS


async def test_large_renders_leave_the_event_loop_and_still_cancel(renderer: BuiltinRenderer) -> None:
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    cancel = CancellationToken()

    def on_call(step: int, total: int) -> None:
        threads.add(threading.get_ident())
        if step == 2:
            cancel.cancel()

    with pytest.raises(GenerationCanceled):
        await generate(renderer, progress=ProgressRecorder(on_call), cancel=cancel, width=512, height=512)
    assert threads and loop_thread not in threads

    small_threads: set[int] = set()
    await generate(renderer, progress=ProgressRecorder(lambda s, t: small_threads.add(threading.get_ident())))
    assert small_threads == {loop_thread}, "thumbnail-sized renders run inline"


# ---------------------------------------------------------------- bad input

BLANK = Image.new("RGB", (64, 64))


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"steps": 0}, "steps"),
        ({"steps": 151}, "steps"),
        ({"guidance": -0.5}, "guidance"),
        ({"guidance": 31.0}, "guidance"),
        ({"type": GenerationType.img2img, "init_image": BLANK, "strength": -0.1}, "strength"),
        ({"type": GenerationType.img2img, "init_image": BLANK, "strength": 1.5}, "strength"),
        ({"type": GenerationType.img2img}, "source image"),
        ({"type": GenerationType.variation}, "source image"),
        ({"type": GenerationType.upscale}, "source image"),
        ({"type": GenerationType.inpaint, "init_image": BLANK}, "mask"),
        ({"type": GenerationType.upscale, "init_image": BLANK, "upscale_factor": 3}, "factor"),
        ({"width": 60}, "width"),
        ({"height": 4096}, "height"),
        ({"num_images": 11}, "num_images"),
        ({"num_images": 0}, "num_images"),
        ({"model": "stable-diffusion-xl"}, "unknown model"),
    ],
)
async def test_bad_requests_are_refused_with_the_reason(
    renderer: BuiltinRenderer, fields: dict[str, Any], message: str
) -> None:
    recorder = ProgressRecorder()
    with pytest.raises(PermanentError, match=message):
        await generate(renderer, progress=recorder, **fields)
    assert recorder.calls == [], "nothing rendered for a refused request"


async def test_aclose_leaves_the_renderer_usable(renderer: BuiltinRenderer) -> None:
    await renderer.aclose()
    assert (await image(renderer)).size == (64, 64)


@pytest.mark.parametrize("type", [GenerationType.inpaint, GenerationType.variation])
async def test_oversized_source_is_refused_where_output_follows_it(
    renderer: BuiltinRenderer, type: GenerationType
) -> None:
    huge = Image.new("RGB", (2056, 64))
    mask = Image.new("L", (2056, 64), 255)
    with pytest.raises(PermanentError, match="2048"):
        await generate(renderer, type=type, init_image=huge, mask_image=mask)
    # img2img resizes its source to the requested size, so a large source is fine there.
    out = await image(renderer, type=GenerationType.img2img, init_image=huge, strength=0.3)
    assert out.size == (64, 64)


@pytest.mark.parametrize("type", sorted(IMAGE_TYPES - {GenerationType.text2img}))
async def test_empty_source_is_refused(renderer: BuiltinRenderer, type: GenerationType) -> None:
    empty = Image.new("RGB", (0, 0))
    with pytest.raises(PermanentError, match="empty"):
        await generate(renderer, type=type, init_image=empty, mask_image=Image.new("L", (0, 0)))


# ---------------------------------------------------------------- the plain-colour model


async def test_solid_is_one_flat_colour_of_the_requested_size(renderer: BuiltinRenderer) -> None:
    progress = ProgressRecorder()
    result = await generate(renderer, progress, model=SOLID_MODEL_ID, prompt="a red square", width=96, height=512)
    assert result.model == SOLID_MODEL_ID
    picture = result.images[0].image
    assert picture.size == (96, 512) and picture.mode == "RGB"
    assert picture.getextrema() == ((220, 220), (30, 30), (40, 40))  # the keyword colour of "red", flat
    assert result.images[0].seed == 7
    assert result.usage == {"steps": DEFAULT_STEPS, "images": 1}
    assert progress.calls == [(1, 1)]  # one fill is one unit of work, whatever the steps


async def test_solid_follows_the_prompt_and_repeats_exactly(renderer: BuiltinRenderer) -> None:
    blue = await image(renderer, model=SOLID_MODEL_ID, prompt="blue")
    again = await image(renderer, model=SOLID_MODEL_ID, prompt="blue")
    green = await image(renderer, model=SOLID_MODEL_ID, prompt="green")
    assert blue.tobytes() == again.tobytes()
    assert blue.getpixel((0, 0)) == (30, 90, 220) and green.getpixel((0, 0)) == (40, 170, 70)


async def test_solid_makes_one_image_per_seed(renderer: BuiltinRenderer) -> None:
    result = await generate(renderer, model=SOLID_MODEL_ID, prompt="", num_images=3, seed=40)
    assert [out.seed for out in result.images] == [40, 41, 42]
    assert len({out.image.getpixel((0, 0)) for out in result.images}) == 3  # no words: the seed picks


@pytest.mark.parametrize("kind", [GenerationType.img2img, GenerationType.inpaint, GenerationType.upscale])
async def test_solid_refuses_edits(renderer: BuiltinRenderer, kind: GenerationType) -> None:
    source = make_init_image((64, 64))
    with pytest.raises(PermanentError):
        await generate(
            renderer, model=SOLID_MODEL_ID, type=kind, init_image=source,
            mask_image=make_mask((64, 64)) if kind == GenerationType.inpaint else None,
        )


async def test_solid_refuses_sizes_outside_the_bounds(renderer: BuiltinRenderer) -> None:
    with pytest.raises(PermanentError):
        await generate(renderer, model=SOLID_MODEL_ID, width=4096, height=64)
    with pytest.raises(PermanentError):
        await generate(renderer, model=SOLID_MODEL_ID, width=100, height=64)  # not a multiple of 8
