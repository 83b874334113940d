"""Hosted adapters list their models from the service and read them through their family tables."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from imagestudio.models.enums import GenerationType
from imagestudio.providers.base import CancellationToken, GenerationRequest, ModelInfo, PermanentError
from imagestudio.providers.catalog import ModelFamily, offered_models, parse_model_setting
from imagestudio.providers.gemini import GeminiProvider
from imagestudio.providers.openai import OpenAIProvider
from imagestudio.providers.stability import StabilityProvider
from tests.fakes.common import ProgressLog, client_for
from tests.fakes.gemini import BASE_URL as GEMINI_URL
from tests.fakes.gemini import FakeGemini, gemini_provider
from tests.fakes.openai import BASE_URL as OPENAI_URL
from tests.fakes.openai import FakeOpenAI, openai_provider

pytestmark = pytest.mark.anyio

GPT_SIZES = [(1024, 1024), (1536, 1024), (1024, 1536)]
T = GenerationType


@pytest.fixture
def openai_fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
async def openai(openai_fake: FakeOpenAI) -> AsyncIterator[OpenAIProvider]:
    async with client_for(openai_fake.app, OPENAI_URL) as client:
        yield openai_provider(openai_fake, client, timeout=5.0)


# ---- the family table ----

FAMILIES = (
    ModelFamily(r"pic-[0-9]+", ModelInfo("pic", "Pic", frozenset({T.text2img}), max_images=4)),
    ModelFamily(r"pic-[0-9]+-edit", ModelInfo("pic-edit", "Pic edit", frozenset({T.inpaint}), max_images=1)),
)


def test_listed_ids_of_known_families_are_offered_with_the_family_capabilities() -> None:
    models = offered_models(FAMILIES, [("pic-1", None), ("chat-9", None), ("pic-7-edit", "Pic 7 edit")])
    assert [(m.id, m.label, m.max_images, set(m.types)) for m in models] == [
        ("pic-1", "Pic (pic-1)", 4, {T.text2img}),
        ("pic-7-edit", "Pic 7 edit", 1, {T.inpaint}),
    ]


def test_the_setting_restricts_with_plain_ids_and_adds_with_plus() -> None:
    listed = [("pic-1", None), ("pic-2", None)]
    assert [m.id for m in offered_models(FAMILIES, listed, setting="pic-2")] == ["pic-2"]
    assert [m.id for m in offered_models(FAMILIES, listed, setting="+pic-9")] == ["pic-1", "pic-2", "pic-9"]
    # An id of no known family cannot be described, so it is left out (with a warning).
    assert [m.id for m in offered_models(FAMILIES, listed, setting="pic-2, chat-1")] == ["pic-2"]
    assert parse_model_setting(" a , +b,, + ,c") == (["a", "c"], ["b"])


# ---- OpenAI ----


async def test_openai_offers_the_image_models_it_lists_and_nothing_else(
    openai: OpenAIProvider, openai_fake: FakeOpenAI
) -> None:
    models = await openai.refresh()

    assert (openai_fake.last.method, openai_fake.last.path) == ("GET", "/v1/models")
    assert openai_fake.last.headers["authorization"] == f"Bearer {openai_fake.api_key}"
    assert [m.id for m in models] == ["gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2"]
    caps = openai.capabilities()
    assert [m.id for m in caps.models] == [m.id for m in models]
    # A model released after this code was written gets its family's capabilities.
    newest = caps.model("gpt-image-2")
    assert newest is not None and newest.label == "GPT Image (gpt-image-2)"
    assert list(newest.sizes or ()) == GPT_SIZES and newest.max_images == 10
    assert newest.types == {T.text2img, T.img2img, T.inpaint}
    assert caps.model("gpt-image-1").label == "GPT Image 1"


async def test_a_listing_without_the_default_model_moves_the_default(
    openai: OpenAIProvider, openai_fake: FakeOpenAI
) -> None:
    openai_fake.models = ["gpt-4o", "gpt-image-1.5", "dall-e-3", "dall-e-2"]
    await openai.refresh()
    caps = openai.capabilities()
    assert [m.id for m in caps.models] == ["gpt-image-1.5"]
    assert caps.default_model == "gpt-image-1.5"


async def test_the_models_setting_restricts_and_adds(openai_fake: FakeOpenAI) -> None:
    async with client_for(openai_fake.app, OPENAI_URL) as client:
        restricted = openai_provider(openai_fake, client, models="gpt-image-1-mini")
        added = openai_provider(openai_fake, client, models="+gpt-image-3,+dall-e-3")
        await restricted.refresh()
        await added.refresh()
    assert [m.id for m in restricted.capabilities().models] == ["gpt-image-1-mini"]
    assert restricted.capabilities().default_model == "gpt-image-1-mini"
    assert [m.id for m in added.capabilities().models] == [
        "gpt-image-1",
        "gpt-image-1-mini",
        "gpt-image-1.5",
        "gpt-image-2",
        "gpt-image-3",
    ]


async def test_a_failed_listing_raises_and_keeps_the_models(openai_fake: FakeOpenAI) -> None:
    async with client_for(openai_fake.app, OPENAI_URL) as client:
        provider = openai_provider(openai_fake, client, api_key="sk-wrong-key-123456789")
        before = provider.capabilities().models
        with pytest.raises(PermanentError) as caught:
            await provider.refresh()
    assert caught.value.code == "provider_auth_failed"
    assert provider.capabilities().models == before


async def test_a_model_of_a_known_family_runs_before_this_process_listed_it(
    openai: OpenAIProvider, openai_fake: FakeOpenAI
) -> None:
    # Another process listed gpt-image-2 and the API accepted it; this worker has not refreshed.
    assert openai.capabilities().model("gpt-image-2") is None
    request = GenerationRequest(type=T.text2img, prompt="a kite", model="gpt-image-2", width=1536, height=1024)
    result = await openai.generate(request, ProgressLog(), CancellationToken())
    assert openai_fake.last.json["model"] == "gpt-image-2"
    assert result.images[0].image.size == (1536, 1024)


async def test_a_model_of_no_known_family_is_still_refused_when_it_runs(
    openai: OpenAIProvider, openai_fake: FakeOpenAI
) -> None:
    request = GenerationRequest(type=T.text2img, prompt="a kite", model="dall-e-3", width=1024, height=1024)
    with pytest.raises(PermanentError) as caught:
        await openai.generate(request, ProgressLog(), CancellationToken())
    assert caught.value.code == "unsupported_request"
    assert openai_fake.requests == []


# ---- Gemini ----


async def test_gemini_pages_through_the_listing_and_keeps_image_models() -> None:
    fake = FakeGemini()
    async with client_for(fake.app, GEMINI_URL) as client:
        provider: GeminiProvider = gemini_provider(fake, client, timeout=5.0)
        models = await provider.refresh()

    listing_calls = [r for r in fake.requests if r.path == "/v1beta/models"]
    assert len(listing_calls) == 3  # seven models, at most three a page
    assert [r.query.get("pageToken") for r in listing_calls] == [None, "3", "6"]
    assert all(r.headers["x-goog-api-key"] == fake.api_key for r in listing_calls)
    # Text, embedding and Imagen (predict) models are not offered; display names become labels
    # except for models this code names itself.
    assert [(m.id, m.label) for m in models] == [
        ("gemini-3.1-flash-image", "Gemini 3.1 Flash Image"),
        ("gemini-3-pro-image", "Gemini 3 Pro Image"),
    ]


# ---- Stability: no listing, so the table and the setting decide ----


async def test_stability_has_no_listing_but_the_setting_adds_a_newer_sd3_model() -> None:
    # No call is made: the client only satisfies the constructor.
    provider = StabilityProvider("sk-x", client=httpx.AsyncClient())
    assert provider.models_path == ""
    assert provider.capabilities().model("sd3.5-large").guidance_range == (1.0, 10.0)
    assert provider.capabilities().model("stable-image-core").guidance_range is None

    added = StabilityProvider("sk-x", client=httpx.AsyncClient(), models="+sd3.5-flash")
    flash = added.capabilities().model("sd3.5-flash")
    assert flash is not None and flash.guidance_range == (1.0, 10.0)
    assert flash.types == {T.text2img, T.img2img}
