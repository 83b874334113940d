"""Which prompt goes to the image provider, and how it was made (seed 001's generation method).

- `language_model`: the language model rewrote the prompt, given the prompt options and, when
  iterating, a caption of the source image;
- `template`: the options were phrased after the prompt, because enhancement was not asked for, or
  no language model is configured, or it failed (the failure is kept, so the studio can say why);
- `none`: the prompt went as written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from imagestudio.language.base import LanguageError, Usage
from imagestudio.language.registry import BUILTIN, LanguageRegistry
from imagestudio.language.tasks import template_prompt


class PromptMethod(StrEnum):
    language_model = "language_model"
    template = "template"
    none = "none"


@dataclass(frozen=True)
class PromptPlan:
    sent_prompt: str
    method: PromptMethod
    provider: str | None = None
    model: str | None = None
    # {"code", "message"} of the language model's failure when the template stood in for it.
    failure: dict[str, str] | None = None
    usage: Usage = field(default_factory=Usage)

    def as_record(self) -> dict[str, object]:
        """What a generation keeps about it (JSON-ready)."""
        return {
            "method": self.method.value,
            "provider": self.provider,
            "model": self.model,
            "failure": self.failure,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
        }


async def plan_prompt(
    language: LanguageRegistry,
    prompt: str,
    options: Mapping[str, object],
    *,
    enhance: bool,
    caption: str | None = None,
    provider: str | None = None,
    context: str | None = None,
) -> PromptPlan:
    """The prompt to send. Never raises for a language model's failure: the template takes over."""
    templated = template_prompt(prompt, options)
    fallback = PromptPlan(templated, PromptMethod.template if templated != prompt.strip() else PromptMethod.none)
    if not enhance:
        return fallback
    name = provider or language.default_name
    if name == BUILTIN or language.problem(name) is not None:
        problem = language.problem(name) or "no language model is configured (IMAGESTUDIO_LANGUAGE_URL)"
        return _templated(templated, "provider_not_configured", problem)
    try:
        result = await language.get(name).enhance(prompt, options, caption=caption, context=context)
    except LanguageError as error:
        return _templated(templated, error.code, error.message)
    return PromptPlan(
        result.text,
        PromptMethod.language_model,
        provider=result.provider,
        model=result.model,
        usage=result.usage,
    )


def _templated(templated: str, code: str, message: str) -> PromptPlan:
    return PromptPlan(templated, PromptMethod.template, failure={"code": code, "message": message})
