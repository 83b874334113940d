"""How the prompt sent to the image provider is made: the language model, the template, or as written."""

from __future__ import annotations

import pytest

from imagestudio.language.enhance import PromptMethod, plan_prompt
from imagestudio.language.registry import LanguageRegistry
from tests.fakes.chat_openai import FakeChatCompletions, chat_model
from tests.fakes.common import Fault

pytestmark = pytest.mark.anyio

OPTIONS = {"shot_type": "wide shot", "lighting": "golden hour"}


@pytest.fixture
def fake() -> FakeChatCompletions:
    return FakeChatCompletions()


async def test_the_language_model_rewrites_the_prompt_with_options_and_caption(fake: FakeChatCompletions) -> None:
    fake.reply_next("A sweeping wide shot of a lighthouse glowing in golden hour light")
    language = LanguageRegistry([chat_model(fake)], default="openai")
    plan = await plan_prompt(language, "a lighthouse", OPTIONS, enhance=True, caption="a grey coast at noon")
    assert plan.sent_prompt == "A sweeping wide shot of a lighthouse glowing in golden hour light"
    assert (plan.method, plan.provider, plan.model, plan.failure) == (
        PromptMethod.language_model,
        "openai",
        "gpt-4o-mini",
        None,
    )
    assert plan.usage.completion_tokens == 12
    instruction = fake.last.json["messages"][1]["content"]
    assert "Prompt: a lighthouse" in instruction
    assert "shot type: wide shot; lighting: golden hour" in instruction
    assert "The image being changed shows: a grey coast at noon" in instruction
    assert plan.as_record()["method"] == "language_model"


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.rate_limit(retry_after=1), "provider_rate_limited"),
        (Fault.content_rejection(style="refusal"), "content_rejected"),
        (Fault.server_error(500), "provider_unavailable"),
        (Fault.malformed(), "provider_bad_response"),
    ],
)
async def test_a_failing_model_leaves_the_template_and_the_failure(fake: FakeChatCompletions, fault, code) -> None:
    fake.fail_next(fault)
    language = LanguageRegistry([chat_model(fake)], default="openai")
    plan = await plan_prompt(language, "a lighthouse.", OPTIONS, enhance=True)
    assert plan.sent_prompt == "a lighthouse, wide shot, golden hour lighting"
    assert plan.method == PromptMethod.template and plan.provider is None
    assert plan.failure is not None and plan.failure["code"] == code and plan.failure["message"]


async def test_without_a_language_model_the_template_says_why() -> None:
    plan = await plan_prompt(LanguageRegistry(), "a lighthouse", OPTIONS, enhance=True)
    assert plan.method == PromptMethod.template
    assert plan.failure == {
        "code": "provider_not_configured",
        "message": "no language model is configured (IMAGESTUDIO_LANGUAGE_URL)",
    }


async def test_without_enhancement_nothing_is_asked(fake: FakeChatCompletions) -> None:
    language = LanguageRegistry([chat_model(fake)], default="openai")
    templated = await plan_prompt(language, "a lighthouse", OPTIONS, enhance=False)
    assert (templated.sent_prompt, templated.method, templated.failure) == (
        "a lighthouse, wide shot, golden hour lighting",
        PromptMethod.template,
        None,
    )
    untouched = await plan_prompt(language, "a lighthouse", {}, enhance=False)
    assert (untouched.sent_prompt, untouched.method) == ("a lighthouse", PromptMethod.none)
    assert fake.requests == []
