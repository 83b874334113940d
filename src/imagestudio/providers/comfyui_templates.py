"""ComfyUI workflow templates: API-format graphs with named slots the adapter fills per request.

A template file (text2img.json, img2img.json, inpaint.json) holds:

    {
      "description": "optional, for people reading the file",
      "slots": {"prompt": ["6", "text"], "seed": ["3", "seed"], ...},
      "graph": { ... the graph as ComfyUI's "Save (API Format)" exports it ... }
    }

Each slot names the node id and the input that receives a request value. The bundled templates live
in comfyui_workflows/; a folder of your own with the same file names and slot names replaces any of
them. Templates are checked when loaded, so a broken one is refused at startup with the file and
slot named, never half-way through a generation.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from imagestudio.providers.base import GenerationType

# Slots every template of a type must offer: without them a request value would be silently dropped.
_COMMON = frozenset(
    {"prompt", "negative_prompt", "seed", "steps", "cfg", "sampler", "batch_size", "checkpoint"}
)
REQUIRED_SLOTS: Mapping[GenerationType, frozenset[str]] = {
    GenerationType.text2img: _COMMON | {"width", "height"},
    GenerationType.img2img: _COMMON | {"denoise", "init_image"},
    GenerationType.inpaint: _COMMON | {"denoise", "init_image", "mask_image"},
}
# Slots a template may offer: filled when present, skipped when not.
OPTIONAL_SLOTS = frozenset({"scheduler", "width", "height", "denoise"})
KNOWN_SLOTS = frozenset().union(*REQUIRED_SLOTS.values()) | OPTIONAL_SLOTS
TEMPLATE_FILES: Mapping[GenerationType, str] = {
    GenerationType.text2img: "text2img.json",
    GenerationType.img2img: "img2img.json",
    GenerationType.inpaint: "inpaint.json",
}


class WorkflowTemplateError(ValueError):
    """A workflow template that cannot be used; the message names the file and what is wrong."""


@dataclass(frozen=True)
class WorkflowTemplate:
    type: GenerationType
    source: str
    graph: Mapping[str, dict]
    slots: Mapping[str, tuple[str, str]]

    def default(self, slot: str) -> object:
        """The value the template itself holds for a slot."""
        node_id, input_name = self.slots[slot]
        return self.graph[node_id]["inputs"][input_name]

    def fill(self, values: Mapping[str, object]) -> dict:
        """A fresh graph with each given slot set; slots the template lacks are skipped (optional ones)."""
        graph = copy.deepcopy(dict(self.graph))
        for slot, value in values.items():
            target = self.slots.get(slot)
            if target is None:
                continue
            node_id, input_name = target
            graph[node_id]["inputs"][input_name] = value
        return graph


def _is_link(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def parse_template(type: GenerationType, text: str, source: str) -> WorkflowTemplate:
    """Check one template's JSON and build it; every problem is reported with the source name."""

    def fail(problem: str) -> WorkflowTemplateError:
        return WorkflowTemplateError(f"ComfyUI workflow template {source}: {problem}")

    try:
        document = json.loads(text)
    except ValueError as exc:
        raise fail(f"not valid JSON ({exc})") from exc
    if not isinstance(document, dict):
        raise fail('expected an object with "slots" and "graph"')
    graph, slots = document.get("graph"), document.get("slots")
    if not isinstance(graph, dict) or not graph:
        raise fail('"graph" must be a non-empty object in ComfyUI API format')
    if not isinstance(slots, dict):
        raise fail('"slots" must be an object mapping slot names to [node id, input name]')
    _check_graph(graph, fail)
    _check_slot_names(type, slots, fail)
    parsed = {slot: _slot_target(slot, target, graph, fail) for slot, target in slots.items()}
    return WorkflowTemplate(type=type, source=source, graph=graph, slots=parsed)


def _check_graph(graph: dict, fail: Callable[[str], WorkflowTemplateError]) -> None:
    """Every node has a class_type and inputs, and every link points at a node of the graph."""
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise fail(f"node {node_id!r} has no class_type (is this the API format export?)")
        if not isinstance(node.get("inputs"), dict):
            raise fail(f"node {node_id!r} has no inputs object")
        for input_name, value in node["inputs"].items():
            if _is_link(value) and value[0] not in graph:
                raise fail(f"node {node_id!r} input {input_name!r} links to missing node {value[0]!r}")


def _check_slot_names(type: GenerationType, slots: dict, fail: Callable[[str], WorkflowTemplateError]) -> None:
    unknown = sorted(set(slots) - KNOWN_SLOTS)
    if unknown:
        known = ", ".join(sorted(KNOWN_SLOTS))
        raise fail(f"unknown slot(s) {', '.join(unknown)}; slots are: {known}")
    missing = sorted(REQUIRED_SLOTS[type] - set(slots))
    if missing:
        raise fail(f"missing required slot(s) for {type}: {', '.join(missing)}")


def _slot_target(
    slot: str, target: object, graph: dict, fail: Callable[[str], WorkflowTemplateError]
) -> tuple[str, str]:
    """The (node id, input name) a slot fills, once it names a value input of a node in the graph."""
    if not (isinstance(target, list) and len(target) == 2 and all(isinstance(t, str) for t in target)):
        raise fail(f'slot {slot!r} must be ["node id", "input name"]')
    node_id, input_name = target
    if node_id not in graph:
        raise fail(f"slot {slot!r} points at node {node_id!r}, which is not in the graph")
    inputs = graph[node_id]["inputs"]
    if input_name not in inputs:
        class_type = graph[node_id]["class_type"]
        raise fail(f"slot {slot!r} points at input {input_name!r}, which node {node_id!r} ({class_type}) lacks")
    if _is_link(inputs[input_name]):
        raise fail(f"slot {slot!r} points at {node_id}.{input_name}, which is a link, not a value")
    return node_id, input_name


def load_templates(folder: str | Path | None = None) -> dict[GenerationType, WorkflowTemplate]:
    """The bundled templates, each replaced by a same-named file in `folder` when there is one."""
    bundled = resources.files("imagestudio.providers").joinpath("comfyui_workflows")
    templates = {
        type: parse_template(type, bundled.joinpath(name).read_text("utf-8"), f"bundled {name}")
        for type, name in TEMPLATE_FILES.items()
    }
    if folder is None:
        return templates
    directory = Path(folder)
    if not directory.is_dir():
        raise WorkflowTemplateError(f"ComfyUI workflow folder {directory} does not exist or is not a folder")
    for type, name in TEMPLATE_FILES.items():
        path = directory / name
        if path.is_file():
            try:
                text = path.read_text("utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise WorkflowTemplateError(
                    f"ComfyUI workflow template {path}: cannot be read ({exc})"
                ) from exc
            templates[type] = parse_template(type, text, str(path))
    return templates
