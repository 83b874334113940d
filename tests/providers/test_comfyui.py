"""The ComfyUI adapter against a fake ComfyUI speaking the real HTTP and websocket protocol."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from importlib import resources
from pathlib import Path

import anyio
import httpx
import pytest
from PIL import Image, ImageChops, ImageDraw

from imagestudio.providers.base import (
    CancellationToken,
    GenerationCanceled,
    GenerationRequest,
    GenerationType,
    NotConfiguredError,
    PermanentError,
    Provider,
    RetriableError,
    UnsupportedRequest,
    check_request,
)
from imagestudio.providers.comfyui import DEFAULT_MODEL_ID, ComfyUIProvider
from imagestudio.providers.comfyui_templates import WorkflowTemplateError, load_templates
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.comfyui_nodes import image_colour
from tests.fakes.server import RunningServer, closed_port_url, serve
from tests.providers.conformance import ProviderConformance

pytestmark = pytest.mark.anyio

CANARY_TOKEN = "canary-token-3b9e41d0aa"


@pytest.fixture(scope="module")
def comfy_server() -> Iterator[tuple[FakeComfyUI, RunningServer]]:
    fake = FakeComfyUI(token=CANARY_TOKEN)
    with serve(fake.app) as running:
        yield fake, running


@pytest.fixture
def fake(comfy_server: tuple[FakeComfyUI, RunningServer]) -> FakeComfyUI:
    fake, _ = comfy_server
    fake.reset()
    fake.step_delay = 0.01
    return fake


@pytest.fixture
def base_url(comfy_server: tuple[FakeComfyUI, RunningServer]) -> str:
    return comfy_server[1].base_url


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def make_provider(base_url: str, http_client: httpx.AsyncClient) -> Callable[..., ComfyUIProvider]:
    """Builds a provider bound to the fake; keyword arguments override the test defaults."""

    def build(**overrides: object) -> ComfyUIProvider:
        options: dict = {
            "token": CANARY_TOKEN,
            "client": http_client,
            "poll_interval": 0.02,
            "history_check_interval": 0.5,
        }
        options.update(overrides)
        url = options.pop("base_url", base_url)
        return ComfyUIProvider(url, **options)

    return build


@pytest.fixture
def provider(fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider]) -> ComfyUIProvider:
    return make_provider()


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[int, int]] = []

    def __call__(self, step: int, total: int) -> None:
        self.events.append((step, total))


def request(type: GenerationType = GenerationType.text2img, **fields: object) -> GenerationRequest:
    values: dict = {
        "type": type,
        "prompt": "a red fox in snow",
        "model": DEFAULT_MODEL_ID,
        "width": 64,
        "height": 48,
        "steps": 3,
    }
    values.update(fields)
    return GenerationRequest(**values)


def init_image(size: tuple[int, int] = (64, 48)) -> Image.Image:
    image = Image.new("RGB", size, (30, 90, 200))
    ImageDraw.Draw(image).rectangle((4, 4, 20, 20), fill=(240, 240, 10))
    return image


def mask_image() -> Image.Image:
    mask = Image.new("L", (64, 48), 0)
    ImageDraw.Draw(mask).rectangle((32, 0, 63, 47), fill=255)
    return mask


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None


def graph_sent(fake: FakeComfyUI, index: int = -1) -> dict:
    return fake.prompts[index]["prompt"]


def uploaded(fake: FakeComfyUI, reference: str) -> Image.Image:
    image = Image.open(io.BytesIO(fake.input_files[reference]))
    image.load()
    return image


async def wait_until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for the fake (on its own thread) to reach a state; it has no event to await across threads."""
    with anyio.fail_after(seconds):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


# ---- generation types ----


async def test_text2img_fills_the_template_slots(fake: FakeComfyUI, provider: ComfyUIProvider):
    result = await provider.generate(
        request(
            negative_prompt="blurry",
            seed=42,
            num_images=2,
            guidance=5.5,
            scheduler="dpmpp_2m",
            extra={"scheduler": "karras"},
        ),
        Recorder(),
        CancellationToken(),
    )

    graph = graph_sent(fake)
    assert fake.prompts[-1]["client_id"]
    sampler = graph["3"]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (42, 3, 5.5)
    assert (sampler["sampler_name"], sampler["scheduler"], sampler["denoise"]) == ("dpmpp_2m", "karras", 1.0)
    assert graph["6"]["inputs"]["text"] == "a red fox in snow"
    assert graph["7"]["inputs"]["text"] == "blurry"
    assert graph["5"]["inputs"] == {"width": 64, "height": 48, "batch_size": 2}
    assert graph["4"]["inputs"]["ckpt_name"] == "v1-5-pruned-emaonly.safetensors"  # the template's own
    assert [image.seed for image in result.images] == [42, None]  # one seed drives the whole batch
    for index, generated in enumerate(result.images):
        assert generated.image.size == (64, 48)
        assert generated.image.getpixel((60, 40)) == image_colour(42, index)
    assert result.usage["prompt_id"] == fake.current_job.prompt_id


async def test_unset_values_keep_the_templates_defaults(fake: FakeComfyUI, provider: ComfyUIProvider):
    result = await provider.generate(request(steps=None, seed=None), Recorder(), CancellationToken())

    sampler = graph_sent(fake)["3"]["inputs"]
    assert (sampler["steps"], sampler["cfg"], sampler["sampler_name"]) == (20, 7.0, "euler")
    assert isinstance(sampler["seed"], int)
    assert result.images[0].seed == sampler["seed"]


async def test_refresh_lists_checkpoints_and_the_chosen_one_is_loaded(fake: FakeComfyUI, provider):
    assert [m.id for m in provider.capabilities().models] == [DEFAULT_MODEL_ID]

    models = await provider.refresh()

    assert [m.id for m in models] == [
        DEFAULT_MODEL_ID,
        "v1-5-pruned-emaonly.safetensors",
        "sd_xl_base_1.0.safetensors",
    ]
    assert provider.capabilities().model("sd_xl_base_1.0.safetensors").label == "sd_xl_base_1.0"
    await provider.generate(request(model="sd_xl_base_1.0.safetensors"), Recorder(), CancellationToken())
    assert graph_sent(fake)["4"]["inputs"]["ckpt_name"] == "sd_xl_base_1.0.safetensors"


async def test_refresh_learns_the_sampler_nodes_choices(fake: FakeComfyUI, provider):
    await provider.refresh()
    caps = provider.capabilities()
    assert caps.samplers == ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc")
    assert caps.schedulers == ("normal", "karras", "exponential", "sgm_uniform", "simple", "beta")
    base = {"type": GenerationType.text2img, "model": None, "num_images": 1, "width": 512, "height": 512}
    check_request(caps, **base, has_init=False, has_mask=False, scheduler="dpmpp_2m", extra={"scheduler": "karras"})
    with pytest.raises(UnsupportedRequest, match="unknown sampler 'Euler a'"):
        check_request(caps, **base, has_init=False, has_mask=False, scheduler="Euler a")
    with pytest.raises(UnsupportedRequest, match="unknown scheduler 'Karras'"):
        check_request(caps, **base, has_init=False, has_mask=False, extra={"scheduler": "Karras"})

    await provider.generate(
        request(scheduler="dpmpp_2m", extra={"scheduler": "karras"}), Recorder(), CancellationToken()
    )
    sampler = graph_sent(fake)["3"]["inputs"]
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("dpmpp_2m", "karras")


async def test_a_sampler_node_without_choices_leaves_them_unchecked(fake: FakeComfyUI, provider):
    fake.malformed_next("/object_info/KSampler", b'{"KSampler": {"input": {"required": {}}}}')
    models = await provider.refresh()
    assert len(models) == 3  # the checkpoints are listed all the same
    assert provider.capabilities().samplers == () and provider.capabilities().schedulers == ()


async def test_refresh_understands_the_newer_combo_format(fake: FakeComfyUI, provider):
    spec = {"CheckpointLoaderSimple": {"input": {"required": {"ckpt_name": ["COMBO", {"options": ["a.ckpt"]}]}}}}
    fake.malformed_next("/object_info/CheckpointLoaderSimple", json.dumps(spec).encode())
    assert [m.id for m in await provider.refresh()] == [DEFAULT_MODEL_ID, "a.ckpt"]

    fake.malformed_next("/object_info/CheckpointLoaderSimple", b"{}")
    with pytest.raises(PermanentError, match="CheckpointLoaderSimple"):
        await provider.refresh()


async def test_img2img_uploads_the_init_image_and_sets_denoise(fake: FakeComfyUI, provider):
    source = init_image()
    result = await provider.generate(
        request(GenerationType.img2img, init_image=source, strength=0.6, seed=3, num_images=2),
        Recorder(),
        CancellationToken(),
    )

    [upload] = fake.uploads
    assert (upload["type"], upload["overwrite"], upload["subfolder"]) == ("input", "true", "imagestudio")
    graph = graph_sent(fake)
    reference = graph["10"]["inputs"]["image"]
    assert reference == f"imagestudio/{upload['name']}"
    assert same_pixels(uploaded(fake, reference), source)
    assert graph["3"]["inputs"]["denoise"] == 0.6
    assert graph["12"]["inputs"]["amount"] == 2
    assert len(result.images) == 2
    expected = Image.blend(source, Image.new("RGB", (64, 48), image_colour(3, 0)), 0.6)
    assert result.images[0].image.getpixel((60, 40)) == expected.getpixel((60, 40))


async def test_init_images_are_resized_to_the_requested_size(fake: FakeComfyUI, provider):
    await provider.generate(
        request(GenerationType.img2img, init_image=init_image((128, 96))), Recorder(), CancellationToken()
    )
    assert uploaded(fake, graph_sent(fake)["10"]["inputs"]["image"]).size == (64, 48)


async def test_inpaint_uploads_the_mask_and_repaints_only_white(fake: FakeComfyUI, provider):
    source, mask = init_image(), mask_image()
    result = await provider.generate(
        request(GenerationType.inpaint, init_image=source, mask_image=mask, strength=1.0, seed=11),
        Recorder(),
        CancellationToken(),
    )

    graph = graph_sent(fake)
    assert len(fake.uploads) == 2
    assert same_pixels(uploaded(fake, graph["10"]["inputs"]["image"]), source)
    mask_sent = uploaded(fake, graph["13"]["inputs"]["image"])
    assert mask_sent.mode == "L" and same_pixels(mask_sent, mask)
    assert graph["13"]["inputs"]["channel"] == "red"
    output = result.images[0].image.convert("RGB")
    assert output.getpixel((10, 10)) == source.getpixel((10, 10))
    assert output.getpixel((60, 40)) == image_colour(11, 0)


async def test_variation_is_img2img_at_low_denoise(fake: FakeComfyUI, provider):
    await provider.generate(request(GenerationType.variation, init_image=init_image()), Recorder(), CancellationToken())
    assert graph_sent(fake)["3"]["inputs"]["denoise"] == pytest.approx(0.35)


async def test_types_without_a_template_are_not_offered(fake: FakeComfyUI, provider):
    caps = provider.capabilities()
    assert isinstance(provider, Provider)
    assert set(caps.types) == {"text2img", "img2img", "inpaint", "variation"}
    with pytest.raises(PermanentError, match="no workflow template for upscale"):
        await provider.generate(
            request(GenerationType.upscale, init_image=init_image()), Recorder(), CancellationToken()
        )
    with pytest.raises(PermanentError, match="mask"):
        await provider.generate(
            request(GenerationType.inpaint, init_image=init_image()), Recorder(), CancellationToken()
        )
    assert fake.prompts == [] and fake.uploads == []


# ---- progress, fallback and cancellation ----


async def test_progress_follows_the_websocket(fake: FakeComfyUI, provider):
    events = Recorder()
    await provider.generate(request(steps=5), events, CancellationToken())

    assert fake.websocket_connections == 1
    assert events.events == [(step, 5) for step in range(1, 6)]


async def test_without_a_websocket_the_history_is_polled(fake: FakeComfyUI, provider):
    fake.websocket_enabled = False  # e.g. a proxy that does not pass websockets through
    events = Recorder()

    result = await provider.generate(request(seed=8), events, CancellationToken())

    assert fake.websocket_connections == 0
    assert result.images[0].image.getpixel((60, 40)) == image_colour(8, 0)
    assert events.events[-1] == (1, 1)


async def test_a_websocket_dropped_mid_run_falls_back_to_polling(fake: FakeComfyUI, provider, caplog):
    caplog.set_level(logging.INFO)
    fake.drop_websocket_at_step = 2
    events = Recorder()

    result = await provider.generate(request(steps=6, seed=21), events, CancellationToken())

    assert fake.current_job.steps_done == 6
    assert any("websocket closed" in record.getMessage() for record in caplog.records)
    assert (1, 6) in events.events and (3, 6) not in events.events  # progress stopped with the socket
    assert events.events[-1] == (6, 6)
    assert result.images[0].image.getpixel((60, 40)) == image_colour(21, 0)


async def test_polling_can_be_chosen_outright(fake: FakeComfyUI, make_provider):
    provider = make_provider(use_websocket=False)
    result = await provider.generate(request(), Recorder(), CancellationToken())
    assert fake.websocket_connections == 0 and len(result.images) == 1


async def test_cancel_mid_run_interrupts_our_prompt(fake: FakeComfyUI, provider):
    fake.step_delay = 0.03
    cancel = CancellationToken()

    def cancel_at_step_two(step: int, total: int) -> None:
        if step >= 2:
            cancel.cancel()

    with pytest.raises(GenerationCanceled), anyio.fail_after(10):
        await provider.generate(request(steps=50), cancel_at_step_two, cancel)

    job = fake.current_job
    assert fake.interrupts == [{"prompt_id": job.prompt_id, "applied": True}]
    assert fake.queue_deletes == []
    await wait_until(lambda: job.finished)
    assert job.interrupted and 2 <= job.steps_done < 50
    assert fake.history[job.prompt_id]["status"]["status_str"] == "error"


async def test_cancel_while_queued_drops_the_prompt_without_interrupting(fake: FakeComfyUI, provider):
    fake.paused = True
    cancel = CancellationToken()
    task = asyncio.create_task(provider.generate(request(), Recorder(), cancel))
    await wait_until(lambda: bool(fake.pending_ids()))
    [prompt_id] = fake.pending_ids()

    cancel.cancel()
    with pytest.raises(GenerationCanceled), anyio.fail_after(5):
        await task

    assert fake.queue_deletes == [prompt_id]
    assert fake.interrupts == []
    assert fake.pending_ids() == []


async def test_an_interrupt_by_someone_else_is_retriable(fake: FakeComfyUI, provider, base_url, http_client):
    fake.step_delay = 0.03
    task = asyncio.create_task(provider.generate(request(steps=50), Recorder(), CancellationToken()))
    await wait_until(lambda: fake.current_job is not None and fake.current_job.steps_done >= 1)
    await http_client.post(f"{base_url}/interrupt", headers={"Authorization": f"Bearer {CANARY_TOKEN}"})

    with pytest.raises(RetriableError, match="interrupted"), anyio.fail_after(5):
        await task


async def test_a_workflow_that_never_finishes_times_out_and_is_stopped(fake: FakeComfyUI, make_provider):
    provider = make_provider(generation_timeout=0.3)
    fake.step_delay = 0.02
    with pytest.raises(RetriableError, match="did not finish"):
        await provider.generate(request(steps=200), Recorder(), CancellationToken())
    assert [entry["applied"] for entry in fake.interrupts] == [True]


# ---- failure mapping ----


async def test_node_errors_are_permanent_and_name_the_node(fake: FakeComfyUI, provider):
    fake.node_errors_next = True  # the checkpoint vanished from the server
    with pytest.raises(PermanentError) as caught:
        await provider.generate(request(), Recorder(), CancellationToken())
    assert caught.value.code == "provider_bad_workflow"
    message = caught.value.message
    assert "Prompt outputs failed validation" in message
    assert "node 4 (CheckpointLoaderSimple)" in message
    assert "v1-5-pruned-emaonly.safetensors" in message


@pytest.mark.parametrize("use_websocket", [True, False], ids=["websocket", "polling"])
async def test_a_node_failing_at_run_time_is_permanent(fake: FakeComfyUI, make_provider, use_websocket):
    fake.execution_error_next = ("RuntimeError", "mat1 and mat2 shapes cannot be multiplied")
    provider = make_provider(use_websocket=use_websocket)
    with pytest.raises(PermanentError, match=r"node 3 \(KSampler\).*shapes cannot be multiplied"):
        await provider.generate(request(), Recorder(), CancellationToken())


async def test_running_out_of_gpu_memory_is_retriable(fake: FakeComfyUI, provider):
    fake.execution_error_next = ("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(RetriableError, match="out of memory"):
        await provider.generate(request(), Recorder(), CancellationToken())


@pytest.mark.parametrize(
    ("path", "status", "headers", "retry_after"),
    [
        ("/prompt", 500, {}, None),
        ("/prompt", 503, {"Retry-After": "12"}, 12.0),
        ("/upload/image", 502, {}, None),
        ("/history/", 504, {}, None),
    ],
)
async def test_server_trouble_is_retriable(fake: FakeComfyUI, provider, path, status, headers, retry_after):
    generation = request(GenerationType.img2img, init_image=init_image())
    if path == "/history/":
        # The prompt id is unknown up front, so hold the queue, learn it, then break its history.
        fake.paused = True
        task = asyncio.create_task(provider.generate(generation, Recorder(), CancellationToken()))
        await wait_until(lambda: bool(fake.pending_ids()))
        fake.fail_next(f"/history/{fake.pending_ids()[0]}", status, times=50)
        fake.paused = False
        awaitable = task
    else:
        fake.fail_next(path, status, headers=headers)
        awaitable = provider.generate(generation, Recorder(), CancellationToken())
    with pytest.raises(RetriableError) as caught, anyio.fail_after(10):
        await awaitable
    assert caught.value.retry_after == retry_after
    assert f"HTTP {status}" in caught.value.message


async def test_connection_refused_is_retriable(make_provider):
    provider = make_provider(base_url=closed_port_url())
    with pytest.raises(RetriableError, match="could not be reached"):
        await provider.generate(request(), Recorder(), CancellationToken())


async def test_a_slow_server_times_out_as_retriable(fake: FakeComfyUI, make_provider):
    provider = make_provider(request_timeout=0.2)
    fake.slow_next("/prompt", 1.0)
    with pytest.raises(RetriableError, match="timed out"):
        await provider.generate(request(), Recorder(), CancellationToken())


async def test_a_missing_output_file_is_permanent(fake: FakeComfyUI, provider):
    fake.fail_next("/view", 404, body=b"")
    with pytest.raises(PermanentError, match="HTTP 404"):
        await provider.generate(request(), Recorder(), CancellationToken())


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/prompt", b"<html>proxy error page</html>"),
        ("/prompt", b'{"number": 1, "node_errors": {}}'),
        ("/upload/image", b'{"subfolder": "", "type": "input"}'),
        ("/view", b"these bytes are not an image"),
    ],
    ids=["prompt-not-json", "prompt-without-id", "upload-without-name", "view-not-an-image"],
)
async def test_malformed_answers_are_permanent(fake: FakeComfyUI, provider, path: str, raw: bytes):
    fake.malformed_next(path, raw, content_type="image/png" if path == "/view" else "application/json")
    with pytest.raises(PermanentError) as caught:
        await provider.generate(
            request(GenerationType.img2img, init_image=init_image()), Recorder(), CancellationToken()
        )
    assert caught.value.code == "provider_bad_response"


# ---- the fake refuses what ComfyUI refuses ----


async def test_the_fake_refuses_graphs_comfyui_would(base_url: str, http_client: httpx.AsyncClient, fake):
    headers = {"Authorization": f"Bearer {CANARY_TOKEN}"}
    graph = json.loads(
        resources.files("imagestudio.providers").joinpath("comfyui_workflows/text2img.json").read_text()
    )["graph"]
    dangling = json.loads(json.dumps(graph))
    dangling["8"]["inputs"]["samples"] = ["99", 0]
    answer = await http_client.post(f"{base_url}/prompt", json={"prompt": dangling}, headers=headers)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["9"]["errors"][0]["type"] == "exception_during_validation"

    unknown = {**graph, "9": {"class_type": "SaveImageToTheMoon", "inputs": {}}}
    answer = await http_client.post(f"{base_url}/prompt", json={"prompt": unknown}, headers=headers)
    assert answer.status_code == 400 and "does not exist" in answer.json()["error"]["message"]

    out_of_range = json.loads(json.dumps(graph))
    out_of_range["3"]["inputs"]["denoise"] = 1.5
    answer = await http_client.post(f"{base_url}/prompt", json={"prompt": out_of_range}, headers=headers)
    assert answer.json()["node_errors"]["3"]["errors"][0]["type"] == "value_bigger_than_max"
    assert fake.jobs == []


# ---- templates ----


def _bundled_text2img() -> dict:
    text = resources.files("imagestudio.providers").joinpath("comfyui_workflows/text2img.json").read_text()
    return json.loads(text)


def _drop_seed(doc: dict) -> None:
    del doc["slots"]["seed"]


def _point_at_missing_node(doc: dict) -> None:
    doc["slots"]["seed"] = ["42", "seed"]


def _point_at_missing_input(doc: dict) -> None:
    doc["slots"]["seed"] = ["3", "noise_seed"]


def _point_at_a_link(doc: dict) -> None:
    doc["slots"]["seed"] = ["3", "model"]


def _unknown_slot(doc: dict) -> None:
    doc["slots"]["sede"] = ["3", "seed"]


def _dangling_link(doc: dict) -> None:
    doc["graph"]["8"]["inputs"]["vae"] = ["77", 2]


def _ui_format(doc: dict) -> None:
    doc["graph"] = {"nodes": [], "links": []}


@pytest.mark.parametrize(
    ("break_it", "complaint"),
    [
        (_drop_seed, "missing required slot(s) for text2img: seed"),
        (_point_at_missing_node, "points at node '42', which is not in the graph"),
        (_point_at_missing_input, "points at input 'noise_seed', which node '3' (KSampler) lacks"),
        (_point_at_a_link, "is a link, not a value"),
        (_unknown_slot, "unknown slot(s) sede"),
        (_dangling_link, "links to missing node '77'"),
        (_ui_format, "API format"),
    ],
)
def test_a_broken_template_is_refused_at_load_time(tmp_path: Path, break_it, complaint: str):
    document = _bundled_text2img()
    break_it(document)
    (tmp_path / "text2img.json").write_text(json.dumps(document))

    with pytest.raises(WorkflowTemplateError) as caught:
        ComfyUIProvider("http://127.0.0.1:8188", workflows_dir=tmp_path)
    assert complaint in str(caught.value)
    assert str(tmp_path / "text2img.json") in str(caught.value)


def test_unreadable_templates_and_folders_are_refused(tmp_path: Path):
    (tmp_path / "inpaint.json").write_text("{not json")
    with pytest.raises(WorkflowTemplateError, match=r"inpaint\.json: not valid JSON"):
        load_templates(tmp_path)
    with pytest.raises(WorkflowTemplateError, match="does not exist"):
        load_templates(tmp_path / "nowhere")


async def test_a_users_own_template_replaces_the_bundled_one(fake: FakeComfyUI, make_provider, tmp_path: Path):
    document = _bundled_text2img()
    renumbered = {f"10{node_id}": node for node_id, node in document["graph"].items()}
    for node in renumbered.values():
        for name, value in node["inputs"].items():
            if isinstance(value, list):
                node["inputs"][name] = [f"10{value[0]}", value[1]]
    renumbered["109"]["inputs"]["filename_prefix"] = "mine"
    slots = {slot: [f"10{node_id}", name] for slot, (node_id, name) in document["slots"].items()}
    (tmp_path / "text2img.json").write_text(json.dumps({"slots": slots, "graph": renumbered}))
    provider = make_provider(workflows_dir=tmp_path)

    result = await provider.generate(request(seed=77, num_images=1), Recorder(), CancellationToken())

    graph = graph_sent(fake)
    assert graph["103"]["inputs"]["seed"] == 77 and graph["106"]["inputs"]["text"] == "a red fox in snow"
    assert any(filename.startswith("mine_") for _, filename, _ in fake.output_files)
    assert result.images[0].image.getpixel((60, 40)) == image_colour(77, 0)
    assert set(provider.capabilities().types) == {"text2img", "img2img", "inpaint", "variation"}


# ---- configuration and secrets ----


@pytest.mark.parametrize("url", [None, ""])
async def test_without_a_base_url_the_provider_is_not_configured(url, http_client):
    provider = ComfyUIProvider(url, client=http_client)
    assert "base URL" in provider.configuration_problem()
    with pytest.raises(NotConfiguredError):
        await provider.generate(request(), Recorder(), CancellationToken())
    with pytest.raises(NotConfiguredError):
        await provider.refresh()


async def test_a_wrong_token_is_permanent(fake: FakeComfyUI, make_provider):
    provider = make_provider(token="not-the-token")
    with pytest.raises(PermanentError) as caught:
        await provider.generate(request(), Recorder(), CancellationToken())
    assert caught.value.code == "provider_auth_failed"
    assert fake.websocket_connections == 0 and fake.auth_failures >= 1


async def test_the_token_never_shows_in_errors_reprs_or_logs(fake: FakeComfyUI, make_provider, caplog):
    caplog.set_level(logging.DEBUG)
    provider = make_provider()
    errors: list[BaseException] = []

    async def collect(prov: ComfyUIProvider, generation: GenerationRequest) -> None:
        try:
            await prov.generate(generation, Recorder(), CancellationToken())
        except Exception as exc:
            errors.append(exc)

    await provider.generate(request(), Recorder(), CancellationToken())  # a websocket handshake happens here
    fake.fail_next("/prompt", 500)
    await collect(provider, request())
    fake.node_errors_next = True
    await collect(provider, request())
    await collect(make_provider(token=f"x{CANARY_TOKEN}"), request())
    await collect(make_provider(base_url=closed_port_url()), request())
    await collect(make_provider(base_url=f"http://user:{CANARY_TOKEN}@127.0.0.1:1"), request())
    fake.paused = True
    fake.fail_next("/queue", 500)  # reading the queue on cancel fails and is logged
    cancel = CancellationToken()
    task = asyncio.create_task(provider.generate(request(), Recorder(), cancel))
    await wait_until(lambda: bool(fake.pending_ids()))
    cancel.cancel()
    with pytest.raises(GenerationCanceled):
        await task

    assert len(errors) == 5
    assert any("could not read the ComfyUI queue" in r.getMessage() for r in caplog.records)
    texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(provider)]
    texts += [record.getMessage() for record in caplog.records] + [caplog.text]
    encoded = base64.b64encode(f"user:{CANARY_TOKEN}".encode()).decode()
    for text in texts:
        assert CANARY_TOKEN not in text
        assert encoded not in text


class TestComfyUIConformance(ProviderConformance):
    """The shared provider contract, against the fake server."""

    exercised_types = frozenset({GenerationType.text2img, GenerationType.img2img, GenerationType.inpaint})

    @pytest.fixture
    def provider(self, fake: FakeComfyUI, make_provider: Callable[..., ComfyUIProvider]) -> ComfyUIProvider:
        return make_provider()
