"""The node classes the fake ComfyUI knows: their input specs, validation and (symbolic) execution.

Validation follows ComfyUI's execution.validate_prompt: unknown classes and missing class_type
refuse the whole prompt; per output node, required inputs, links (length, target node, return type),
INT/FLOAT bounds and combo choices are checked, and failures come back as node_errors in the
server's own shapes. Execution computes real Pillow images from the graph so tests can see that the
slot values reached the right nodes.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from PIL import Image, ImageDraw

MAX_SEED = 0xFFFFFFFFFFFFFFFF
SAMPLERS = ("euler", "euler_ancestral", "dpmpp_2m", "dpmpp_sde", "ddim", "uni_pc")
SCHEDULERS = ("normal", "karras", "exponential", "sgm_uniform", "simple", "beta")


@dataclass(frozen=True)
class Int:
    min: int
    max: int


@dataclass(frozen=True)
class Float:
    min: float
    max: float


@dataclass(frozen=True)
class Choices:
    """A combo input; `source` names a dynamic list ("checkpoints", "input_files") or None for `static`."""

    static: tuple[str, ...] = ()
    source: str | None = None


STRING = "STRING"
Spec = str | Int | Float | Choices


@dataclass(frozen=True)
class NodeClass:
    name: str
    required: Mapping[str, Spec]
    returns: tuple[str, ...]
    output_node: bool = False


CATALOG: dict[str, NodeClass] = {
    node.name: node
    for node in (
        NodeClass(
            "CheckpointLoaderSimple", {"ckpt_name": Choices(source="checkpoints")}, ("MODEL", "CLIP", "VAE")
        ),
        NodeClass("CLIPTextEncode", {"text": STRING, "clip": "CLIP"}, ("CONDITIONING",)),
        NodeClass(
            "EmptyLatentImage",
            {"width": Int(16, 16384), "height": Int(16, 16384), "batch_size": Int(1, 4096)},
            ("LATENT",),
        ),
        NodeClass(
            "KSampler",
            {
                "model": "MODEL",
                "seed": Int(0, MAX_SEED),
                "steps": Int(1, 10000),
                "cfg": Float(0.0, 100.0),
                "sampler_name": Choices(SAMPLERS),
                "scheduler": Choices(SCHEDULERS),
                "positive": "CONDITIONING",
                "negative": "CONDITIONING",
                "latent_image": "LATENT",
                "denoise": Float(0.0, 1.0),
            },
            ("LATENT",),
        ),
        NodeClass("VAEDecode", {"samples": "LATENT", "vae": "VAE"}, ("IMAGE",)),
        NodeClass("VAEEncode", {"pixels": "IMAGE", "vae": "VAE"}, ("LATENT",)),
        NodeClass("LoadImage", {"image": Choices(source="input_files")}, ("IMAGE", "MASK")),
        NodeClass(
            "LoadImageMask",
            {"image": Choices(source="input_files"), "channel": Choices(("alpha", "red", "green", "blue"))},
            ("MASK",),
        ),
        NodeClass("SetLatentNoiseMask", {"samples": "LATENT", "mask": "MASK"}, ("LATENT",)),
        NodeClass("RepeatLatentBatch", {"samples": "LATENT", "amount": Int(1, 64)}, ("LATENT",)),
        NodeClass("SaveImage", {"images": "IMAGE", "filename_prefix": STRING}, (), output_node=True),
        NodeClass("PreviewImage", {"images": "IMAGE"}, (), output_node=True),
    )
}


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch: int
    init: Image.Image | None = None
    mask: Image.Image | None = None
    seed: int | None = None
    denoise: float = 1.0
    prompt: str = ""


def image_colour(seed: int, index: int) -> tuple[int, int, int]:
    """The colour the fake paints for batch image `index` of a seed: deterministic, like a sampler."""
    rng = random.Random(f"{seed}:{index}")
    return rng.randrange(256), rng.randrange(256), rng.randrange(256)


# ---- validation ----


def _error(kind: str, message: str, details: str, **extra: object) -> dict:
    return {"type": kind, "message": message, "details": details, "extra_info": dict(extra)}


def validate_prompt(prompt: object, choices: Mapping[str, list[str]]) -> tuple[dict | None, list[str], dict]:
    """(error, outputs to execute, node_errors) as ComfyUI's validate_prompt decides them."""
    if not isinstance(prompt, dict):
        return _error("invalid_prompt", "Invalid prompt", "prompt must be an object"), [], {}
    outputs: list[str] = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return (
                _error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                ),
                [],
                {},
            )
        node_class = CATALOG.get(node["class_type"])
        if node_class is None:
            return (
                _error(
                    "invalid_prompt",
                    f"Cannot execute because node {node['class_type']} does not exist.",
                    f"Node ID '#{node_id}'",
                ),
                [],
                {},
            )
        if node_class.output_node:
            outputs.append(node_id)
    if not outputs:
        return _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {}

    validated: dict[str, tuple[bool, list[dict]]] = {}
    node_errors: dict[str, dict] = {}
    good: list[str] = []
    failures: list[dict] = []
    for output in outputs:
        try:
            ok = _validate_node(prompt, output, validated, choices)
        except (KeyError, TypeError, IndexError) as exc:  # what ComfyUI hits on a link to a missing node
            reason = _error(
                "exception_during_validation",
                "Exception when validating node",
                str(exc),
                exception_type=type(exc).__name__,
            )
            validated[output] = (False, [reason])
            ok = False
        if ok:
            good.append(output)
            continue
        for node_id, (valid, reasons) in validated.items():
            if not valid and reasons:
                entry = node_errors.setdefault(
                    node_id,
                    {"errors": reasons, "dependent_outputs": [], "class_type": prompt[node_id]["class_type"]},
                )
                entry["dependent_outputs"].append(output)
                failures.extend(reasons)
    if not good:
        details = "\n".join(f"{r['message']}: {r['details']}" for r in failures)
        return (
            _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
            [],
            node_errors,
        )
    return None, good, node_errors


def _validate_node(prompt: dict, node_id: str, validated: dict, choices: Mapping[str, list[str]]) -> bool:
    if node_id in validated:
        return validated[node_id][0]
    node = prompt[node_id]
    node_class = CATALOG[node["class_type"]]
    inputs = node.get("inputs") or {}
    errors: list[dict] = []
    valid = True
    for name, spec in node_class.required.items():
        if name not in inputs:
            errors.append(
                _error("required_input_missing", "Required input is missing", name, input_name=name)
            )
            continue
        value = inputs[name]
        if isinstance(value, list):
            if len(value) != 2:
                errors.append(
                    _error(
                        "bad_linked_input",
                        "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                        name,
                    )
                )
                continue
            source_id, slot = value
            source_class = CATALOG[prompt[source_id]["class_type"]]  # KeyError when the node is missing
            received = source_class.returns[slot]
            if received != spec:
                errors.append(
                    _error(
                        "return_type_mismatch",
                        "Return type mismatch between linked nodes",
                        f"{name}, {received} != {spec}",
                        input_name=name,
                        linked_node=value,
                    )
                )
                continue
            if not _validate_node(prompt, source_id, validated, choices):
                valid = False
            continue
        if isinstance(spec, str) and spec != STRING:
            errors.append(_error("bad_linked_input", f"Input {name} must be linked to a {spec} output", name))
        elif isinstance(spec, (Int, Float)):
            try:
                number = int(value) if isinstance(spec, Int) else float(value)
            except (TypeError, ValueError) as exc:
                kind = "INT" if isinstance(spec, Int) else "FLOAT"
                errors.append(
                    _error(
                        "invalid_input_type",
                        f"Failed to convert an input value to a {kind} value",
                        f"{name}, {value}, {exc}",
                        input_name=name,
                        received_value=value,
                    )
                )
                continue
            if number < spec.min:
                errors.append(
                    _error(
                        "value_smaller_than_min",
                        f"Value {number} smaller than min of {spec.min}",
                        name,
                        input_name=name,
                        received_value=value,
                    )
                )
            elif number > spec.max:
                errors.append(
                    _error(
                        "value_bigger_than_max",
                        f"Value {number} bigger than max of {spec.max}",
                        name,
                        input_name=name,
                        received_value=value,
                    )
                )
        elif isinstance(spec, Choices):
            allowed = list(choices.get(spec.source, [])) if spec.source else list(spec.static)
            if spec.source == "input_files" and value not in allowed:
                errors.append(
                    _error(
                        "custom_validation_failed",
                        "Custom validation failed for node",
                        f"image - Invalid image file: {value}",
                        input_name=name,
                    )
                )
            elif value not in allowed:
                listed = f"(list of length {len(allowed)})" if len(allowed) > 20 else str(allowed)
                errors.append(
                    _error(
                        "value_not_in_list",
                        "Value not in list",
                        f"{name}: '{value}' not in {listed}",
                        input_name=name,
                        received_value=value,
                    )
                )
    ok = valid and not errors
    validated[node_id] = (ok, errors)
    return ok


# ---- execution ----


class Interrupted(Exception):
    """ComfyUI's InterruptProcessingException."""


class NodeFailure(Exception):
    """A node raised while running; carries what execution_error reports."""

    def __init__(self, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type


class Runtime(Protocol):
    """What node functions need from the fake server running them."""

    prompt_id: str

    def load_input(self, name: str) -> Image.Image: ...
    def save_output(self, image: Image.Image, prefix: str) -> dict: ...
    async def sampler_step(self, node_id: str, step: int, total: int) -> None: ...


@dataclass
class Executed:
    outputs: dict[str, tuple] = field(default_factory=dict)
    ui: dict[str, dict] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)


NodeFunction = Callable[[Runtime, str, dict], Awaitable[tuple]]


async def _checkpoint(runtime: Runtime, node_id: str, args: dict) -> tuple:
    name = args["ckpt_name"]
    return f"model:{name}", f"clip:{name}", f"vae:{name}"


async def _clip_text_encode(runtime: Runtime, node_id: str, args: dict) -> tuple:
    return ({"text": str(args["text"])},)


async def _empty_latent(runtime: Runtime, node_id: str, args: dict) -> tuple:
    return (Latent(int(args["width"]), int(args["height"]), int(args["batch_size"])),)


async def _ksampler(runtime: Runtime, node_id: str, args: dict) -> tuple:
    steps = int(args["steps"])
    for step in range(1, steps + 1):
        await runtime.sampler_step(node_id, step, steps)
    latent: Latent = args["latent_image"]
    return (
        replace(
            latent, seed=int(args["seed"]), denoise=float(args["denoise"]), prompt=args["positive"]["text"]
        ),
    )


async def _vae_decode(runtime: Runtime, node_id: str, args: dict) -> tuple:
    latent: Latent = args["samples"]
    images = []
    for index in range(latent.batch):
        painted = Image.new("RGB", (latent.width, latent.height), image_colour(latent.seed or 0, index))
        ImageDraw.Draw(painted).text((2, 2), latent.prompt[:30], fill=(255, 255, 255))
        if latent.init is not None:
            base = latent.init.convert("RGB").resize((latent.width, latent.height))
            painted = Image.blend(base, painted, latent.denoise)
            if latent.mask is not None:
                painted = Image.composite(painted, base, latent.mask.resize((latent.width, latent.height)))
        images.append(painted)
    return (images,)


async def _vae_encode(runtime: Runtime, node_id: str, args: dict) -> tuple:
    [image] = args["pixels"][:1]
    return (Latent(image.width, image.height, 1, init=image),)


async def _load_image(runtime: Runtime, node_id: str, args: dict) -> tuple:
    image = runtime.load_input(args["image"])
    # Transparent pixels become the mask, as in ComfyUI's LoadImage (1 - alpha).
    alpha = image.getchannel("A") if "A" in image.getbands() else Image.new("L", image.size, 255)
    return [image.convert("RGB")], Image.eval(alpha, lambda a: 255 - a)


async def _load_image_mask(runtime: Runtime, node_id: str, args: dict) -> tuple:
    image = runtime.load_input(args["image"]).convert("RGBA")
    channel = args["channel"][0].upper()
    mask = image.getchannel(channel)
    return (Image.eval(mask, lambda a: 255 - a) if channel == "A" else mask,)


async def _set_latent_noise_mask(runtime: Runtime, node_id: str, args: dict) -> tuple:
    return (replace(args["samples"], mask=args["mask"]),)


async def _repeat_latent_batch(runtime: Runtime, node_id: str, args: dict) -> tuple:
    latent: Latent = args["samples"]
    return (replace(latent, batch=latent.batch * int(args["amount"])),)


async def _save_image(runtime: Runtime, node_id: str, args: dict) -> tuple:
    saved = [
        runtime.save_output(image, str(args.get("filename_prefix", "ComfyUI"))) for image in args["images"]
    ]
    return ({"images": saved},)


FUNCTIONS: dict[str, NodeFunction] = {
    "CheckpointLoaderSimple": _checkpoint,
    "CLIPTextEncode": _clip_text_encode,
    "EmptyLatentImage": _empty_latent,
    "KSampler": _ksampler,
    "VAEDecode": _vae_decode,
    "VAEEncode": _vae_encode,
    "LoadImage": _load_image,
    "LoadImageMask": _load_image_mask,
    "SetLatentNoiseMask": _set_latent_noise_mask,
    "RepeatLatentBatch": _repeat_latent_batch,
    "SaveImage": _save_image,
    "PreviewImage": _save_image,
}


async def execute_node(
    prompt: dict,
    node_id: str,
    runtime: Runtime,
    done: Executed,
    on_start: Callable[[str], Awaitable[None]],
) -> None:
    """Run a node after its inputs, like ComfyUI's recursive execution; output nodes record their ui."""
    if node_id in done.outputs:
        return
    node = prompt[node_id]
    args: dict = {}
    for name, value in node["inputs"].items():
        if isinstance(value, list) and len(value) == 2:
            await execute_node(prompt, value[0], runtime, done, on_start)
            args[name] = done.outputs[value[0]][value[1]]
        else:
            args[name] = value
    await on_start(node_id)
    result = await FUNCTIONS[node["class_type"]](runtime, node_id, args)
    node_class = CATALOG[node["class_type"]]
    if node_class.output_node:
        done.ui[node_id] = result[0]
        done.outputs[node_id] = ()
    else:
        done.outputs[node_id] = result
    done.order.append(node_id)
