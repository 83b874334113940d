"""The AUTOMATIC1111 adapter against a fake webui that speaks the real API over real HTTP."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from PIL import Image, ImageChops, ImageDraw

from imagestudio.providers.a1111 import DEFAULT_MODEL_ID, A1111Provider
from imagestudio.providers.base import (
    CancellationToken,
    GenerationCanceled,
    GenerationRequest,
    GenerationType,
    NotConfiguredError,
    PermanentError,
    Provider,
    ProviderCapabilities,
    RetriableError,
    UnsupportedRequest,
    check_request,
)
from tests.fakes.a1111 import FakeA1111, seed_colour
from tests.fakes.server import RunningServer, closed_port_url, serve
from tests.providers.conformance import ProviderConformance

pytestmark = pytest.mark.anyio

CANARY_USER = "studio"
CANARY_PASSWORD = "canary-pw-5e1f0c77d2"
TXT2IMG = "/sdapi/v1/txt2img"
IMG2IMG = "/sdapi/v1/img2img"


@pytest.fixture(scope="module")
def a1111_server() -> Iterator[tuple[FakeA1111, RunningServer]]:
    fake = FakeA1111(credentials=f"{CANARY_USER}:{CANARY_PASSWORD}")
    with serve(fake.app) as running:
        yield fake, running


@pytest.fixture
def fake(a1111_server: tuple[FakeA1111, RunningServer]) -> FakeA1111:
    fake, _ = a1111_server
    fake.reset()
    fake.step_delay = 0.01
    return fake


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def make_provider(
    a1111_server: tuple[FakeA1111, RunningServer], http_client: httpx.AsyncClient
) -> Callable[..., A1111Provider]:
    """Builds a provider bound to the fake; keyword arguments override the test defaults."""
    _, running = a1111_server

    def build(**overrides: object) -> A1111Provider:
        options: dict = {
            "auth": f"{CANARY_USER}:{CANARY_PASSWORD}",
            "client": http_client,
            "poll_interval": 0.02,
            "interrupt_grace": 2.0,
        }
        options.update(overrides)
        base_url = options.pop("base_url", running.base_url)
        return A1111Provider(base_url, **options)

    return build


@pytest.fixture
def provider(fake: FakeA1111, make_provider: Callable[..., A1111Provider]) -> A1111Provider:
    return make_provider()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[int, int]] = []

    def __call__(self, step: int, total: int) -> None:
        self.events.append((step, total))


def request(type: GenerationType = GenerationType.text2img, **fields: object) -> GenerationRequest:
    values: dict = {
        "type": type,
        "prompt": "a lighthouse at dusk",
        "model": DEFAULT_MODEL_ID,
        "width": 64,
        "height": 48,
        "steps": 3,
    }
    values.update(fields)
    return GenerationRequest(**values)


def init_image() -> Image.Image:
    image = Image.new("RGB", (64, 48), (20, 120, 220))
    ImageDraw.Draw(image).rectangle((8, 8, 24, 24), fill=(250, 250, 0))
    return image


def mask_image() -> Image.Image:
    mask = Image.new("L", (64, 48), 0)
    ImageDraw.Draw(mask).rectangle((32, 0, 63, 47), fill=255)  # repaint the right half only
    return mask


def decode_b64(data: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    image.load()
    return image


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None


# ---- generation types ----


async def test_text2img_sends_webui_parameters_and_returns_real_seeds(fake: FakeA1111, provider: A1111Provider):
    result = await provider.generate(
        request(negative_prompt="blurry", seed=1234, num_images=2, guidance=6.5, scheduler="DPM++ 2M"),
        Recorder(),
        CancellationToken(),
    )

    [sent] = fake.bodies(TXT2IMG)
    assert sent["prompt"] == "a lighthouse at dusk"
    assert sent["negative_prompt"] == "blurry"
    assert (sent["seed"], sent["steps"], sent["cfg_scale"]) == (1234, 3, 6.5)
    assert (sent["width"], sent["height"], sent["batch_size"], sent["n_iter"]) == (64, 48, 2, 1)
    assert sent["sampler_name"] == "DPM++ 2M"
    assert "override_settings" not in sent  # the "default" model keeps the loaded checkpoint
    assert [image.seed for image in result.images] == [1234, 1235]
    for generated in result.images:
        assert generated.image.size == (64, 48)
        assert generated.image.getpixel((60, 40)) == seed_colour(generated.seed)


async def test_unseeded_requests_get_the_seed_the_server_chose(fake: FakeA1111, provider: A1111Provider):
    result = await provider.generate(request(seed=None), Recorder(), CancellationToken())

    assert fake.bodies(TXT2IMG)[0]["seed"] == -1
    [generated] = result.images
    assert isinstance(generated.seed, int)
    assert generated.image.getpixel((60, 40)) == seed_colour(generated.seed)


async def test_img2img_sends_the_init_image_and_denoising_strength(fake: FakeA1111, provider: A1111Provider):
    source = init_image()
    result = await provider.generate(
        request(GenerationType.img2img, init_image=source, strength=0.6, seed=7),
        Recorder(),
        CancellationToken(),
    )

    [sent] = fake.bodies(IMG2IMG)
    assert sent["denoising_strength"] == 0.6
    assert len(sent["init_images"]) == 1
    assert same_pixels(decode_b64(sent["init_images"][0]), source)
    assert "mask" not in sent
    assert [image.seed for image in result.images] == [7]
    assert result.images[0].image.size == (64, 48)


async def test_inpaint_sends_the_mask_and_keeps_unmasked_pixels(fake: FakeA1111, provider: A1111Provider):
    source, mask = init_image(), mask_image()
    result = await provider.generate(
        request(
            GenerationType.inpaint,
            init_image=source,
            mask_image=mask,
            strength=1.0,
            seed=99,
            extra={"mask_blur": 0, "inpainting_fill": 2},
        ),
        Recorder(),
        CancellationToken(),
    )

    [sent] = fake.bodies(IMG2IMG)
    sent_mask = decode_b64(sent["mask"])
    assert sent_mask.mode == "L"
    assert same_pixels(sent_mask, mask)
    assert same_pixels(decode_b64(sent["init_images"][0]), source)
    assert (sent["mask_blur"], sent["inpainting_fill"], sent["inpainting_mask_invert"]) == (0, 2, 0)
    assert sent["denoising_strength"] == 1.0
    output = result.images[0].image.convert("RGB")
    assert output.getpixel((12, 12)) == source.getpixel((12, 12))  # left half untouched
    assert output.getpixel((60, 40)) == seed_colour(99)  # right half repainted


async def test_variation_is_img2img_at_low_strength(fake: FakeA1111, provider: A1111Provider):
    await provider.generate(request(GenerationType.variation, init_image=init_image()), Recorder(), CancellationToken())

    [sent] = fake.bodies(IMG2IMG)
    assert sent["denoising_strength"] == pytest.approx(0.35)


async def test_upscale_goes_through_extra_single_image(fake: FakeA1111, make_provider):
    provider = make_provider(upscaler="R-ESRGAN 4x+")
    source = init_image()
    events = Recorder()

    result = await provider.generate(
        request(GenerationType.upscale, init_image=source, upscale_factor=4), events, CancellationToken()
    )

    [sent] = fake.bodies("/sdapi/v1/extra-single-image")
    assert (sent["upscaling_resize"], sent["upscaler_1"], sent["resize_mode"]) == (4, "R-ESRGAN 4x+", 0)
    assert same_pixels(decode_b64(sent["image"]), source)
    [generated] = result.images
    assert generated.image.size == (256, 192)
    assert events.events[-1] == (1, 1)


async def test_upscale_with_an_upscaler_the_server_lacks_fails(fake: FakeA1111, make_provider):
    provider = make_provider(upscaler="SwinIR 9000")
    # The webui reports an unknown upscaler as a 500 AssertionError; we can only pass on its words.
    with pytest.raises(RetriableError, match="could not find upscaler named SwinIR 9000"):
        await provider.generate(
            request(GenerationType.upscale, init_image=init_image()), Recorder(), CancellationToken()
        )


async def test_requests_without_their_images_are_refused_before_sending(fake: FakeA1111, provider):
    with pytest.raises(PermanentError, match="init image"):
        await provider.generate(request(GenerationType.img2img), Recorder(), CancellationToken())
    with pytest.raises(PermanentError, match="mask"):
        await provider.generate(
            request(GenerationType.inpaint, init_image=init_image()), Recorder(), CancellationToken()
        )
    assert fake.received == []


# ---- models and capabilities ----


async def test_refresh_learns_checkpoints_and_overrides_the_one_asked_for(fake: FakeA1111, provider):
    assert [m.id for m in provider.capabilities().models] == [DEFAULT_MODEL_ID]

    models = await provider.refresh()

    assert [m.id for m in models] == [DEFAULT_MODEL_ID, "v1-5-pruned-emaonly", "sd_xl_base_1.0"]
    caps = provider.capabilities()
    assert caps.model("sd_xl_base_1.0").label == "sd_xl_base_1.0.safetensors [31e35c80fc]"
    await provider.generate(request(model="sd_xl_base_1.0"), Recorder(), CancellationToken())
    assert fake.bodies(TXT2IMG)[0]["override_settings"] == {"sd_model_checkpoint": "sd_xl_base_1.0"}


async def test_refresh_learns_samplers_schedulers_and_upscalers(fake: FakeA1111, provider):
    assert provider.capabilities().samplers == ()

    await provider.refresh()

    caps = provider.capabilities()
    assert caps.samplers == ("Euler a", "Euler", "DPM++ 2M", "DPM++ SDE", "DDIM", "UniPC")
    assert caps.schedulers == ("automatic", "uniform", "karras", "exponential")
    assert caps.upscalers == ("None", "Lanczos", "Nearest", "R-ESRGAN 4x+")
    # What the server listed is what a request may name, checked before anything is queued.
    base = {"type": GenerationType.text2img, "model": None, "num_images": 1, "width": 512, "height": 512}
    check_request(caps, **base, has_init=False, has_mask=False, scheduler="DPM++ 2M", extra={"scheduler": "karras"})
    with pytest.raises(UnsupportedRequest, match=r"unknown sampler 'DPM\+\+ 9M'") as refused:
        check_request(caps, **base, has_init=False, has_mask=False, scheduler="DPM++ 9M")
    assert refused.value.field == "scheduler"
    with pytest.raises(UnsupportedRequest, match="unknown scheduler 'polyexponential'") as refused:
        check_request(caps, **base, has_init=False, has_mask=False, extra={"scheduler": "polyexponential"})
    assert refused.value.field == "params.extra.scheduler"
    with pytest.raises(UnsupportedRequest, match="unknown upscaler 'SwinIR 9000'"):
        check_request(
            caps, **{**base, "type": GenerationType.upscale}, has_init=True, has_mask=False,
            extra={"upscaler": "SwinIR 9000"},
        )  # fmt: skip
    # The lists survive the providers table, as an API process reads them back.
    assert ProviderCapabilities.from_stored(caps.as_dict(), caps.models_as_list()).schedulers == caps.schedulers


async def test_the_chosen_sampler_scheduler_and_upscaler_are_sent(fake: FakeA1111, provider):
    await provider.refresh()
    await provider.generate(
        request(scheduler="DPM++ 2M", extra={"scheduler": "karras"}), Recorder(), CancellationToken()
    )
    [sent] = fake.bodies(TXT2IMG)
    assert (sent["sampler_name"], sent["scheduler"]) == ("DPM++ 2M", "karras")
    await provider.generate(
        request(GenerationType.upscale, init_image=init_image(), extra={"upscaler": "Nearest"}),
        Recorder(),
        CancellationToken(),
    )
    [upscaled] = fake.bodies("/sdapi/v1/extra-single-image")
    assert upscaled["upscaler_1"] == "Nearest"


async def test_a_server_without_the_schedulers_route_leaves_schedules_unchecked(fake: FakeA1111, provider):
    fake.schedulers_route = False
    await provider.refresh()
    caps = provider.capabilities()
    assert caps.schedulers == () and caps.samplers
    check_request(
        caps, type=GenerationType.text2img, model=None, num_images=1, width=512, height=512, has_init=False,
        has_mask=False, extra={"scheduler": "anything"},
    )  # fmt: skip


async def test_refresh_rejects_a_malformed_model_list(fake: FakeA1111, provider):
    fake.malformed_next("/sdapi/v1/sd-models", b'[{"title": "no model name"}]')
    with pytest.raises(PermanentError, match="model_name"):
        await provider.refresh()
    assert [m.id for m in provider.capabilities().models] == [DEFAULT_MODEL_ID]


async def test_unknown_checkpoint_is_the_servers_error(fake: FakeA1111, provider):
    with pytest.raises(RetriableError, match="not found"):
        await provider.generate(request(model="gone-model"), Recorder(), CancellationToken())


async def test_capabilities_declare_the_limits(provider: A1111Provider):
    caps = provider.capabilities()
    assert set(caps.types) == {"text2img", "img2img", "inpaint", "variation", "upscale"}
    assert isinstance(provider, Provider)
    check_request(
        caps,
        type=GenerationType.text2img,
        model=None,
        num_images=8,
        width=512,
        height=768,
        has_init=False,
        has_mask=False,
    )
    with pytest.raises(UnsupportedRequest):
        check_request(
            caps,
            type=GenerationType.text2img,
            model=None,
            num_images=9,
            width=512,
            height=512,
            has_init=False,
            has_mask=False,
        )
    with pytest.raises(UnsupportedRequest):
        check_request(
            caps,
            type=GenerationType.text2img,
            model=None,
            num_images=1,
            width=500,
            height=512,
            has_init=False,
            has_mask=False,
        )


# ---- progress and cancellation ----


async def test_progress_is_polled_while_the_request_is_in_flight(fake: FakeA1111, provider):
    fake.step_delay = 0.03
    events = Recorder()

    await provider.generate(request(steps=10), events, CancellationToken())

    assert fake.progress_polls >= 2
    intermediate = [e for e in events.events if 0 < e[0] < e[1]]
    assert intermediate, events.events
    assert all(total == 10 for _, total in events.events)
    steps = [step for step, _ in events.events]
    assert steps == sorted(steps)
    assert events.events[-1] == (10, 10)


async def test_cancel_mid_run_interrupts_the_server(fake: FakeA1111, provider):
    import anyio

    fake.step_delay = 0.05
    cancel = CancellationToken()
    events = Recorder()

    def cancel_once_running(step: int, total: int) -> None:
        events(step, total)
        if step >= 2:
            cancel.cancel()

    with pytest.raises(GenerationCanceled):
        with anyio.fail_after(10):
            await provider.generate(request(steps=40), cancel_once_running, cancel)

    assert fake.interrupts == 1
    job = fake.current_job
    assert job.interrupted and job.finished
    assert 2 <= job.steps_done < job.steps_total


async def test_cancel_before_start_sends_nothing(fake: FakeA1111, provider):
    cancel = CancellationToken()
    cancel.cancel()
    with pytest.raises(GenerationCanceled):
        await provider.generate(request(), Recorder(), cancel)
    assert fake.received == [] and fake.interrupts == 0


# ---- failure mapping ----


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(500, {}, None), (502, {}, None), (503, {"Retry-After": "7"}, 7.0), (429, {"Retry-After": "2.5"}, 2.5)],
)
async def test_server_trouble_is_retriable(fake: FakeA1111, provider, status, headers, retry_after):
    fake.fail_next(TXT2IMG, status, headers=headers)
    with pytest.raises(RetriableError) as caught:
        await provider.generate(request(), Recorder(), CancellationToken())
    assert caught.value.retry_after == retry_after
    assert f"HTTP {status}" in caught.value.message


async def test_retry_after_as_an_http_date_is_understood(fake: FakeA1111, provider):
    fake.fail_next(TXT2IMG, 503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"})
    with pytest.raises(RetriableError) as caught:
        await provider.generate(request(), Recorder(), CancellationToken())
    assert caught.value.retry_after is not None and caught.value.retry_after > 3600


async def test_connection_refused_is_retriable(make_provider):
    provider = make_provider(base_url=closed_port_url())
    with pytest.raises(RetriableError, match="could not be reached"):
        await provider.generate(request(), Recorder(), CancellationToken())


async def test_a_slow_server_times_out_as_retriable(fake: FakeA1111, make_provider):
    provider = make_provider(generation_timeout=0.2)
    fake.slow_next(TXT2IMG, 1.0)
    with pytest.raises(RetriableError, match="timed out"):
        await provider.generate(request(), Recorder(), CancellationToken())


async def test_rejected_parameters_are_permanent(fake: FakeA1111, provider):
    with pytest.raises(PermanentError, match="Sampler not found") as caught:
        await provider.generate(request(scheduler="Not A Sampler"), Recorder(), CancellationToken())
    assert "HTTP 404" in caught.value.message
    fake.fail_next(
        TXT2IMG, 422, body={"detail": [{"loc": ["body", "steps"], "msg": "Input should be a valid integer"}]}
    )
    with pytest.raises(PermanentError, match="valid integer"):
        await provider.generate(request(), Recorder(), CancellationToken())


@pytest.mark.parametrize(
    "raw",
    [
        b"<html><body>502 Bad Gateway</body></html>",
        b'{"images": "not a list", "info": "{}"}',
        b'{"images": ["@@not base64@@"], "info": "{}"}',
        b'{"images": ["aGVsbG8gd29ybGQ="], "info": "{}"}',
        b'{"images": [], "info": "{}"}',
        b"[]",
    ],
    ids=["html", "images-not-list", "not-base64", "not-an-image", "no-images", "not-an-object"],
)
async def test_malformed_answers_are_permanent(fake: FakeA1111, provider, raw: bytes):
    fake.malformed_next(TXT2IMG, raw)
    with pytest.raises(PermanentError) as caught:
        await provider.generate(request(), Recorder(), CancellationToken())
    assert caught.value.code == "provider_bad_response"


async def test_a_broken_info_string_only_costs_the_seeds(fake: FakeA1111, provider):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(buffer, format="PNG")
    raw = json.dumps(
        {"images": [base64.b64encode(buffer.getvalue()).decode()], "parameters": {}, "info": "not json {"}
    ).encode()
    fake.malformed_next(TXT2IMG, raw)

    result = await provider.generate(request(), Recorder(), CancellationToken())

    assert result.images[0].seed is None
    assert result.images[0].image.getpixel((0, 0)) == (1, 2, 3)


# ---- configuration and secrets ----


@pytest.mark.parametrize("base_url", [None, "", "   "])
async def test_without_a_base_url_the_provider_is_not_configured(base_url, http_client):
    provider = A1111Provider(base_url, client=http_client)
    assert "base URL" in provider.configuration_problem()
    with pytest.raises(NotConfiguredError):
        await provider.generate(request(), Recorder(), CancellationToken())
    with pytest.raises(NotConfiguredError):
        await provider.refresh()


def test_a_malformed_auth_setting_is_refused_without_echoing_it():
    with pytest.raises(ValueError) as caught:
        A1111Provider("http://127.0.0.1:7860", auth=CANARY_PASSWORD)
    assert CANARY_PASSWORD not in str(caught.value)


async def test_wrong_credentials_are_permanent(fake: FakeA1111, make_provider):
    # A poll interval longer than the refusal takes keeps progress polls (also refused) out of the count.
    provider = make_provider(auth=f"{CANARY_USER}:wrong-{CANARY_PASSWORD}", poll_interval=60)
    with pytest.raises(PermanentError) as caught:
        await provider.generate(request(), Recorder(), CancellationToken())
    assert caught.value.code == "provider_auth_failed"
    assert fake.auth_failures == 1
    assert CANARY_PASSWORD not in str(caught.value)


async def test_secrets_never_show_in_errors_reprs_or_logs(fake: FakeA1111, make_provider, caplog):
    caplog.set_level(logging.DEBUG)
    header_token = base64.b64encode(f"{CANARY_USER}:{CANARY_PASSWORD}".encode()).decode()
    provider = make_provider()
    errors: list[BaseException] = []

    async def collect(prov: A1111Provider, req: GenerationRequest, cancel: CancellationToken | None = None):
        try:
            await prov.generate(req, Recorder(), cancel or CancellationToken())
        except Exception as exc:
            errors.append(exc)

    fake.fail_next(TXT2IMG, 500)
    await collect(provider, request())
    fake.malformed_next(TXT2IMG, b"garbage")
    await collect(provider, request())
    await collect(make_provider(auth=f"{CANARY_USER}:x{CANARY_PASSWORD}"), request())
    await collect(make_provider(base_url=closed_port_url()), request())
    unreachable = make_provider(base_url=f"http://{CANARY_USER}:{CANARY_PASSWORD}@127.0.0.1:1")
    await collect(unreachable, request())
    cancel = CancellationToken()
    fake.step_delay = 0.05
    fake.fail_next("/sdapi/v1/interrupt", 500)  # the failed interrupt is logged as a warning

    def cancel_soon(step: int, total: int) -> None:
        cancel.cancel()

    try:
        await provider.generate(request(steps=20), cancel_soon, cancel)
    except GenerationCanceled:
        pass

    assert len(errors) == 5
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(provider), repr(unreachable)]
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text]
    assert any("could not interrupt" in record.getMessage() for record in caplog.records)
    for text in texts:
        assert CANARY_PASSWORD not in text
        assert header_token not in text


class TestA1111Conformance(ProviderConformance):
    """The shared provider contract, against the fake server."""

    exercised_types = frozenset({GenerationType.text2img, GenerationType.img2img, GenerationType.inpaint})

    @pytest.fixture
    def provider(self, fake: FakeA1111, make_provider: Callable[..., A1111Provider]) -> A1111Provider:
        return make_provider()
