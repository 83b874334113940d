"""The conformance suite every provider passes.

Use it from a provider's test module by subclassing in a class whose name starts with ``Test``
and overriding the ``provider`` fixture (sync or async, yielding when it needs teardown)::

    class TestMyProviderConformance(ProviderConformance):
        exercised_types = frozenset({GenerationType.text2img, GenerationType.img2img})

        @pytest.fixture
        async def provider(self, fake_server):
            adapter = MyProvider(client=fake_server.client)
            yield adapter
            await adapter.aclose()

Knobs are class attributes (see below); ``build_request`` can be overridden when a provider needs
special request fields (a particular model, prompt or extra option).
"""

from __future__ import annotations

import json
import threading
from typing import Any, ClassVar

import pytest
from PIL import Image, ImageDraw

from imagestudio.providers.base import (
    TYPES_NEEDING_INIT,
    CancellationToken,
    GenerationCanceled,
    GenerationRequest,
    GenerationResult,
    GenerationType,
    ImageByImageProvider,
    ModelInfo,
    Provider,
    ProviderCapabilities,
    UnsupportedRequest,
    check_request,
)


class ProgressRecorder:
    """A progress callback that remembers its calls; safe to call from worker threads."""

    def __init__(self, on_call: Any = None) -> None:
        self.calls: list[tuple[int, int]] = []
        # (output index, step, picture) for every intermediate picture a provider passed along.
        self.previews: list[tuple[int, int, Image.Image]] = []
        self._lock = threading.Lock()
        self._on_call = on_call

    def __call__(self, step: int, total: int, /, *, preview: Image.Image | None = None, index: int = 0) -> None:
        with self._lock:
            self.calls.append((step, total))
            if preview is not None:
                self.previews.append((index, step, preview))
        if self._on_call is not None:
            self._on_call(step, total)


def make_init_image(size: tuple[int, int]) -> Image.Image:
    """A source picture with structure at several scales: a gradient, a disc and a bar."""
    width, height = size
    image = Image.linear_gradient("L").resize(size).convert("RGB")
    red = Image.linear_gradient("L").rotate(90).resize(size)
    image = Image.merge("RGB", (red, image.getchannel("G"), Image.new("L", size, 90)))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.2, height * 0.2, width * 0.6, height * 0.6), fill=(240, 200, 30))
    draw.rectangle((width * 0.65, height * 0.1, width * 0.8, height * 0.9), fill=(20, 40, 160))
    return image


def make_mask(size: tuple[int, int]) -> Image.Image:
    """An "L" mask, white (repaint) over the centre quarter, black elsewhere."""
    width, height = size
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle(
        (width // 4, height // 4, width * 3 // 4 - 1, height * 3 // 4 - 1), fill=255
    )
    return mask


def smallest_size(caps: ProviderCapabilities, model: ModelInfo) -> tuple[int, int]:
    """The cheapest size the model accepts."""
    if model.sizes:
        return min(model.sizes, key=lambda s: s[0] * s[1])
    side = -(-caps.min_size // caps.size_multiple) * caps.size_multiple
    return (side, side)


def _check(caps: ProviderCapabilities, request: GenerationRequest) -> None:
    check_request(
        caps,
        type=request.type,
        model=request.model,
        num_images=request.num_images,
        width=request.width,
        height=request.height,
        has_init=request.init_image is not None,
        has_mask=request.mask_image is not None,
        upscale_factor=request.upscale_factor,
    )


class ProviderConformance:
    """Checks of the provider contract; see the module docstring for how to use it."""

    pytestmark = pytest.mark.anyio

    # Generation types the suite really runs through generate(); others are checked on paper only.
    exercised_types: ClassVar[frozenset[GenerationType]] = frozenset({GenerationType.text2img})
    # Whether generate() calls progress(step, total) at least once per run.
    reports_progress: ClassVar[bool] = True
    # Whether the provider under test is expected to be ready (configuration_problem() is None).
    expect_configured: ClassVar[bool] = True
    # False for services that take an aspect ratio and choose the pixel size themselves.
    exact_size: ClassVar[bool] = True
    prompt: ClassVar[str] = "a lighthouse on a cliff at dawn"
    seed: ClassVar[int] = 1234

    @pytest.fixture
    def provider(self) -> Provider:
        raise NotImplementedError("subclasses override the provider fixture")

    # ---- request building (override for provider-specific needs)

    def build_request(self, provider: Provider, type: GenerationType, **overrides: Any) -> GenerationRequest:
        """A valid, cheap request of this type: the default model when it serves the type, else the first that does."""
        caps = provider.capabilities()
        model = caps.model(None)
        assert model is not None, "default model is not listed"
        if type not in model.types:
            model = next((m for m in caps.models if type in m.types), model)
        width, height = smallest_size(caps, model)
        fields: dict[str, Any] = {
            "type": type,
            "prompt": self.prompt,
            "model": model.id,
            "num_images": 1,
            "width": width,
            "height": height,
            "seed": self.seed,
        }
        if type in TYPES_NEEDING_INIT:
            fields["init_image"] = make_init_image((width, height))
        if type == GenerationType.inpaint:
            fields["mask_image"] = make_mask((width, height))
        if type == GenerationType.upscale:
            fields["upscale_factor"] = min(caps.upscale_factors)
        fields.update(overrides)
        return GenerationRequest(**fields)

    def expected_size(self, provider: Provider, request: GenerationRequest) -> tuple[int, int]:
        if request.type == GenerationType.upscale:
            assert request.init_image is not None
            factor = request.upscale_factor or provider.capabilities().upscale_factors[0]
            return (request.init_image.width * factor, request.init_image.height * factor)
        return (request.width, request.height)

    def assert_size(self, provider: Provider, request: GenerationRequest, image: Image.Image) -> None:
        expected = self.expected_size(provider, request)
        if self.exact_size or request.type == GenerationType.upscale:
            assert image.size == expected, (request.type, image.size, expected)
            return
        ratio, wanted = image.width / image.height, expected[0] / expected[1]
        assert abs(ratio - wanted) / wanted < 0.35, (request.type, image.size, expected)

    async def run(
        self,
        provider: Provider,
        request: GenerationRequest,
        progress: ProgressRecorder | None = None,
        cancel: CancellationToken | None = None,
    ) -> GenerationResult:
        return await provider.generate(request, progress or ProgressRecorder(), cancel or CancellationToken())

    # ---- capabilities

    async def test_identity_and_protocol(self, provider: Provider) -> None:
        assert isinstance(provider, Provider)
        assert isinstance(provider.name, str) and provider.name.strip()
        assert isinstance(provider.kind, str) and provider.kind.strip()

    async def test_capabilities_are_coherent(self, provider: Provider) -> None:
        caps = provider.capabilities()
        assert caps.types, "a provider does at least one generation type"
        assert caps.models, "a provider lists at least one model"
        ids = [m.id for m in caps.models]
        assert len(ids) == len(set(ids)), f"duplicate model ids: {ids}"
        assert caps.default_model in ids
        for model in caps.models:
            assert model.types, f"{model.id} does no type"
            assert model.types <= caps.types, f"{model.id} does {model.types - caps.types} the provider lacks"
            assert model.label.strip()
            assert model.max_images >= 1
            for w, h in model.sizes or ():
                assert w > 0 and h > 0
        assert caps.max_images >= 1
        assert 0 < caps.min_size <= caps.max_size
        assert caps.size_multiple >= 1
        if GenerationType.upscale in caps.types:
            assert caps.upscale_factors and all(f >= 2 for f in caps.upscale_factors)
        if GenerationType.inpaint in caps.types:
            assert caps.supports_mask, "inpaint without mask support cannot be served"
        # Both views are served as JSON by the API.
        assert json.loads(json.dumps(caps.as_dict()))["default_model"] == caps.default_model
        assert {m["id"] for m in json.loads(json.dumps(caps.models_as_list()))} == set(ids)

    async def test_configuration_problem(self, provider: Provider) -> None:
        problem = provider.configuration_problem()
        if self.expect_configured:
            assert problem is None, f"expected a ready provider, got: {problem}"
        else:
            assert isinstance(problem, str) and problem.strip()

    # ---- check_request, before anything is queued

    async def test_check_request_accepts_exactly_the_provider_types(self, provider: Provider) -> None:
        caps = provider.capabilities()
        for type in GenerationType:
            # build_request picks a model that serves the type when the provider has one.
            request = self.build_request(provider, type)
            if type in caps.types:
                _check(caps, request)
            else:
                with pytest.raises(UnsupportedRequest) as refused:
                    _check(caps, request)
                assert refused.value.field == "type"

    async def test_check_request_refuses_unknown_model(self, provider: Provider) -> None:
        caps = provider.capabilities()
        request = self.build_request(provider, GenerationType.text2img, model="no-such-model-anywhere")
        with pytest.raises(UnsupportedRequest) as refused:
            _check(caps, request)
        assert refused.value.field == "model"

    async def test_check_request_enforces_image_count(self, provider: Provider) -> None:
        caps = provider.capabilities()
        model = caps.model(None)
        assert model is not None
        type = next(iter(sorted(model.types)))
        limit = min(caps.max_images, model.max_images)
        _check(caps, self.build_request(provider, type, num_images=limit))
        for count in (0, -1, limit + 1):
            with pytest.raises(UnsupportedRequest) as refused:
                _check(caps, self.build_request(provider, type, num_images=count))
            assert refused.value.field == "num_images"

    async def test_check_request_refuses_bad_sizes(self, provider: Provider) -> None:
        caps = provider.capabilities()
        model = caps.model(None)
        assert model is not None
        sized_types = model.types - {GenerationType.upscale}
        if not sized_types:
            pytest.skip("the default model only upscales; output size follows the source")
        type = sorted(sized_types)[0]
        if model.sizes:
            bad_sizes = [(7, 7), (model.sizes[0][0] + 1, model.sizes[0][1])]
        else:
            step = caps.size_multiple
            bad_sizes = [
                (caps.min_size - step, caps.min_size),
                (caps.min_size, caps.max_size + step),
                (caps.max_size + step, caps.max_size + step),
                (0, caps.min_size),
            ]
            if step > 1:
                bad_sizes.append((caps.min_size + 1, caps.min_size))
        for width, height in bad_sizes:
            if (width, height) in (model.sizes or ()):
                continue
            with pytest.raises(UnsupportedRequest) as refused:
                _check(caps, self.build_request(provider, type, width=width, height=height))
            assert refused.value.field in ("width", "height"), (width, height)

    async def test_check_request_needs_source_and_mask(self, provider: Provider) -> None:
        caps = provider.capabilities()
        for type in caps.types & TYPES_NEEDING_INIT:
            with pytest.raises(UnsupportedRequest) as refused:
                _check(caps, self.build_request(provider, type, init_image=None))
            assert refused.value.field == "source_asset_id"
        if GenerationType.inpaint in caps.types:
            with pytest.raises(UnsupportedRequest) as refused:
                _check(caps, self.build_request(provider, GenerationType.inpaint, mask_image=None))
            assert refused.value.field == "mask_asset_id"

    async def test_check_request_refuses_unlisted_upscale_factor(self, provider: Provider) -> None:
        caps = provider.capabilities()
        if GenerationType.upscale not in caps.types:
            with pytest.raises(UnsupportedRequest) as refused:
                _check(caps, self.build_request(provider, GenerationType.upscale, upscale_factor=2))
            assert refused.value.field == "type"
            return
        bad = max(caps.upscale_factors) + 1
        with pytest.raises(UnsupportedRequest) as refused:
            _check(caps, self.build_request(provider, GenerationType.upscale, upscale_factor=bad))
        assert refused.value.field == "upscale_factor"

    # ---- generate

    async def test_text2img_returns_the_requested_batch(self, provider: Provider) -> None:
        caps = provider.capabilities()
        model = caps.model(None)
        assert model is not None
        count = min(2, caps.max_images, model.max_images)
        request = self.build_request(provider, GenerationType.text2img, num_images=count)
        result = await self.run(provider, request)
        assert len(result.images) == count
        assert isinstance(result.model, str) and result.model
        for output in result.images:
            assert isinstance(output.image, Image.Image)
            self.assert_size(provider, request, output.image)
        if caps.honours_seed:
            # Backends that drive a whole batch from one seed report it for the first image only.
            seeds = [output.seed for output in result.images if output.seed is not None]
            assert seeds and seeds[0] == self.seed, seeds
            assert len(set(seeds)) == len(seeds), f"a batch reused a seed: {seeds}"

    async def test_image_by_image_makes_exactly_the_indices_asked(self, provider: Provider) -> None:
        """A provider that hands images over one by one makes only the batch indices it is given, in
        that order, each as it would in the whole batch; progress counts the ones made before."""
        if not isinstance(provider, ImageByImageProvider):
            assert not hasattr(provider, "generate_each")
            return
        caps = provider.capabilities()
        model = caps.model(None)
        assert model is not None
        count = min(3, caps.max_images, model.max_images)
        request = self.build_request(provider, GenerationType.text2img, num_images=count)
        wanted = list(range(count))[::-2]  # e.g. [2, 0]: out of order and with a gap
        progress = ProgressRecorder()
        made = [item async for item in provider.generate_each(request, wanted, progress, CancellationToken())]
        assert [index for index, _ in made] == wanted
        for index, piece in made:
            assert len(piece.images) == 1 and piece.model
            self.assert_size(provider, request, piece.images[0].image)
            if caps.honours_seed and piece.images[0].seed is not None:
                assert piece.images[0].seed == self.seed + index
        assert progress.calls[0] == (count - len(wanted), count)
        assert progress.calls[-1] == (count, count)

    async def test_exercised_types_produce_images(self, provider: Provider) -> None:
        caps = provider.capabilities()
        for type in sorted(self.exercised_types):
            assert type in caps.types, f"{type} is exercised but not advertised"
            request = self.build_request(provider, type)
            result = await self.run(provider, request)
            assert len(result.images) == 1, type
            self.assert_size(provider, request, result.images[0].image)

    async def test_progress_is_monotonic_and_ends_at_total(self, provider: Provider) -> None:
        if not self.reports_progress:
            pytest.skip("this provider does not report progress")
        recorder = ProgressRecorder()
        await self.run(provider, self.build_request(provider, GenerationType.text2img), progress=recorder)
        assert recorder.calls, "no progress reported"
        steps = [step for step, _ in recorder.calls]
        assert steps == sorted(steps), recorder.calls
        assert all(0 <= step <= total for step, total in recorder.calls), recorder.calls
        last_step, last_total = recorder.calls[-1]
        assert last_step == last_total > 0

    async def test_cancel_before_start_raises(self, provider: Provider) -> None:
        cancel = CancellationToken()
        cancel.cancel()
        request = self.build_request(provider, GenerationType.text2img)
        with pytest.raises(GenerationCanceled):
            await self.run(provider, request, cancel=cancel)

    async def test_cancel_while_running_raises(self, provider: Provider) -> None:
        if not self.reports_progress:
            pytest.skip("cancel while running is observed through progress; this provider reports none")
        cancel = CancellationToken()
        recorder = ProgressRecorder(on_call=lambda step, total: cancel.cancel())
        request = self.build_request(provider, GenerationType.text2img)
        with pytest.raises(GenerationCanceled):
            await self.run(provider, request, progress=recorder, cancel=cancel)
        assert recorder.calls, "the cancel was requested from a progress call"

    async def test_aclose_is_idempotent(self, provider: Provider) -> None:
        capabilities = provider.capabilities()
        problem = provider.configuration_problem()
        # A second close is a no-op: it neither raises nor answers anything, and closing changes
        # nothing the registry reads (capabilities and configuration).
        assert await provider.aclose() is None
        assert await provider.aclose() is None
        assert provider.capabilities() == capabilities
        assert provider.configuration_problem() == problem
