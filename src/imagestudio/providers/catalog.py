"""Which models a provider offers: what it says it has, read through one table of model families.

A hosted service lists model ids but not what each can do, so every adapter keeps one table of
families (a pattern over ids and the capabilities every member shares). A listed id of a known
family is offered with that family's capabilities, so a model released after this code was written
works the day it appears; an id of no known family (a text or audio model) is not offered.

`IMAGESTUDIO_<PROVIDER>_MODELS` (comma-separated) then adds or restricts: plain ids replace the
discovered list, ids written `+id` are added to it. Either way an id must belong to a known family.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from imagestudio.providers.base import ModelInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFamily:
    """Capabilities shared by every model whose whole id matches `pattern` (a regular expression).

    `traits` is a model description whose id and label name the family; members copy the rest.
    """

    pattern: str
    traits: ModelInfo

    def matches(self, model_id: str) -> bool:
        return re.fullmatch(self.pattern, model_id) is not None

    def model(self, model_id: str, label: str | None = None) -> ModelInfo:
        return dataclasses.replace(self.traits, id=model_id, label=label or f"{self.traits.label} ({model_id})")


def family_of(families: Sequence[ModelFamily], model_id: str) -> ModelFamily | None:
    """The first family whose pattern covers the id (so list specific families before general ones)."""
    return next((family for family in families if family.matches(model_id)), None)


def model_of_family(families: Sequence[ModelFamily], model_id: str, label: str | None = None) -> ModelInfo | None:
    family = family_of(families, model_id)
    return family.model(model_id, label) if family else None


def parse_model_setting(setting: str | None) -> tuple[list[str], list[str]]:
    """(restrict_to, add) from an `IMAGESTUDIO_<PROVIDER>_MODELS` value."""
    restrict: list[str] = []
    add: list[str] = []
    for entry in (setting or "").split(","):
        entry = entry.strip()
        if entry.startswith("+"):
            if entry[1:].strip():
                add.append(entry[1:].strip())
        elif entry:
            restrict.append(entry)
    return restrict, add


def offered_models(
    families: Sequence[ModelFamily],
    discovered: Iterable[tuple[str, str | None]],
    *,
    setting: str | None = None,
    labels: dict[str, str] | None = None,
    setting_name: str = "models setting",
) -> tuple[ModelInfo, ...]:
    """The models to offer: discovered (id, label) pairs of known families, then the setting applied.

    `labels` names the models this code knows by a nicer label than the id; order follows discovery.
    """
    labels = labels or {}
    restrict, add = parse_model_setting(setting)
    wanted: list[tuple[str, str | None]] = [(model_id, None) for model_id in restrict] if restrict else list(discovered)
    wanted += [(model_id, None) for model_id in add]
    models: list[ModelInfo] = []
    seen: set[str] = set()
    for model_id, label in wanted:
        if model_id in seen:
            continue
        info = model_of_family(families, model_id, labels.get(model_id) or label)
        if info is None:
            if model_id in restrict or model_id in add:
                log.warning(
                    "%s names %r, which belongs to no known model family; it is ignored", setting_name, model_id
                )
            continue
        seen.add(model_id)
        models.append(info)
    return tuple(models)
