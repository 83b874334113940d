"""The OpenAI-compatible chat client against a fake server speaking the real wire format."""

from __future__ import annotations

import base64
import io

import httpx
import pytest
from PIL import Image

from imagestudio.language.base import (
    CaptionStyle,
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResult,
    LanguageNotConfiguredError,
    LanguagePermanentError,
    LanguageRefusedError,
    LanguageRetriableError,
)
from imagestudio.language.openai_chat import OpenAIChatModel
from tests.fakes.chat_openai import BASE_URL, FakeChatCompletions, chat_model
from tests.fakes.common import Fault
from tests.fakes.server import closed_port_url, serve
from tests.language.conformance import LanguageConformance, sample_image

pytestmark = pytest.mark.anyio

QUESTION = ChatRequest([ChatMessage("user", "what would make this more cinematic?")], max_tokens=32)


@pytest.fixture
def fake() -> FakeChatCompletions:
    return FakeChatCompletions()


class TestOpenAIChatConformance(LanguageConformance):
    @pytest.fixture
    async def model(self, fake: FakeChatCompletions):
        model = chat_model(fake)
        yield model
        await model._client.aclose()


class TestKeylessServerConformance(LanguageConformance):
    """Ollama, llama.cpp and LM Studio need no key: nothing is sent in Authorization."""

    @pytest.fixture
    async def model(self):
        fake = FakeChatCompletions(api_key=None)
        model = chat_model(fake, model="llama3.2:1b", vision_model="llava:7b")
        yield model
        assert all("authorization" not in request.headers for request in fake.requests)
        await model._client.aclose()


async def test_the_request_has_the_wire_shape(fake: FakeChatCompletions) -> None:
    model = chat_model(fake, model="llama3.2:1b", vision_model="llava:7b")
    result = await model.describe(sample_image((300, 200)), CaptionStyle.short)
    sent = fake.last.json
    assert fake.last.path == "/v1/chat/completions"
    assert fake.last.headers["authorization"] == f"Bearer {fake.api_key}"
    assert sent["model"] == "llava:7b", "an image goes to the vision model"
    assert sent["max_tokens"] > 0 and "stream" not in sent
    text_part, image_part = sent["messages"][0]["content"]
    assert text_part["type"] == "text" and "one short sentence" in text_part["text"]
    url = image_part["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.partition(",")[2])))
    assert decoded.size == (300, 200) and decoded.format == "PNG"
    # The fake describes what it decoded, so the answer proves the picture arrived whole.
    assert result.text.startswith("A picture of 300x200 pixels")
    assert result.model == "llava:7b" and result.provider == "openai"

    await model.complete(QUESTION)
    assert fake.last.json["model"] == "llama3.2:1b", "text goes to the language model"
    assert fake.last.json["messages"] == [{"role": "user", "content": QUESTION.messages[0].text}]


async def test_large_images_are_scaled_down_before_they_are_sent(fake: FakeChatCompletions) -> None:
    await chat_model(fake).describe(sample_image((3000, 1500)), CaptionStyle.short)
    assert fake.images_seen[-1].size == (1024, 512)


async def test_usage_comes_from_the_answer(fake: FakeChatCompletions) -> None:
    fake.reply_next("make the shadows deeper")
    result = await chat_model(fake).complete(QUESTION)
    assert result.text == "make the shadows deeper"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (6, 4)


async def test_streaming_reads_deltas_and_the_final_usage_chunk(fake: FakeChatCompletions) -> None:
    fake.reply_next("a low camera and warm rim light")
    items = [item async for item in chat_model(fake).stream(QUESTION)]
    sent = fake.last.json
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    deltas = [item.text for item in items if isinstance(item, ChatDelta)]
    assert deltas == ["a", " low", " camera", " and", " warm", " rim", " light"]
    final = items[-1]
    assert isinstance(final, ChatResult) and final.text == "a low camera and warm rim light"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (6, 7)


async def test_streams_over_a_real_socket() -> None:
    fake = FakeChatCompletions(api_key=None)
    fake.reply_next("one two three")
    with serve(fake.app) as server:
        async with httpx.AsyncClient() as client:
            model = OpenAIChatModel(client=client, base_url=f"{server.base_url}/v1", api_key=None, model="gpt-4o-mini")
            items = [item async for item in model.stream(QUESTION)]
    assert [item.text for item in items[:-1]] == ["one", " two", " three"]
    assert items[-1].usage.completion_tokens == 3


async def test_429_is_retriable_with_the_retry_after_hint(fake: FakeChatCompletions) -> None:
    fake.fail_next(Fault.rate_limit(retry_after=7))
    with pytest.raises(LanguageRetriableError) as caught:
        await chat_model(fake).complete(QUESTION)
    assert caught.value.retry_after == 7 and caught.value.code == "provider_rate_limited"


async def test_429_without_retry_after_uses_the_rate_limit_reset(fake: FakeChatCompletions) -> None:
    fake.fail_next(Fault.rate_limit(retry_after=None, reset="1.5s"))
    with pytest.raises(LanguageRetriableError) as caught:
        await chat_model(fake).complete(QUESTION)
    assert caught.value.retry_after == 1.5


async def test_429_while_streaming_is_retriable(fake: FakeChatCompletions) -> None:
    fake.fail_next(Fault.rate_limit(retry_after=3))
    with pytest.raises(LanguageRetriableError) as caught:
        async for _ in chat_model(fake).stream(QUESTION):
            pass
    assert caught.value.retry_after == 3


async def test_an_exhausted_quota_is_permanent(fake: FakeChatCompletions) -> None:
    fake.fail_next(Fault.quota())
    with pytest.raises(LanguagePermanentError) as caught:
        await chat_model(fake).complete(QUESTION)
    assert caught.value.code == "provider_quota_exceeded"


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retriable(fake: FakeChatCompletions, status: int) -> None:
    fake.fail_next(Fault.server_error(status, retry_after=2))
    with pytest.raises(LanguageRetriableError) as caught:
        await chat_model(fake).complete(QUESTION)
    assert caught.value.retry_after == 2


@pytest.mark.parametrize("style", ["refusal", "filter", "error"])
async def test_refusals_in_every_form_are_content_refusals(fake: FakeChatCompletions, style: str) -> None:
    model = chat_model(fake)
    fake.fail_next(Fault.content_rejection(style=style))
    with pytest.raises(LanguageRefusedError):
        await model.complete(QUESTION)
    fake.fail_next(Fault.content_rejection(style=style))
    with pytest.raises(LanguageRefusedError):
        async for _ in model.stream(QUESTION):
            pass


async def test_a_slow_service_times_out_as_retriable(fake: FakeChatCompletions) -> None:
    fake.fail_next(Fault.slow(30))
    with pytest.raises(LanguageRetriableError) as caught:
        await chat_model(fake, timeout=0.5).complete(QUESTION)
    assert caught.value.code == "provider_timeout"


async def test_a_slow_stream_times_out_as_retriable(fake: FakeChatCompletions) -> None:
    fake.fail_next(Fault.slow(30))
    with pytest.raises(LanguageRetriableError) as caught:
        async for _ in chat_model(fake, timeout=0.5).stream(QUESTION):
            pass
    assert caught.value.code == "provider_timeout"


async def test_an_unreachable_server_is_retriable() -> None:
    async with httpx.AsyncClient() as client:
        model = OpenAIChatModel(client=client, base_url=closed_port_url(), api_key=None, model="m")
        with pytest.raises(LanguageRetriableError):
            await model.complete(QUESTION)


async def test_a_wrong_key_is_permanent_and_never_echoed(fake: FakeChatCompletions) -> None:
    model = chat_model(fake, api_key="sk-wrong-key-1234567890")
    with pytest.raises(LanguagePermanentError) as caught:
        await model.complete(QUESTION)
    assert caught.value.code == "provider_auth_failed"
    assert "sk-wrong-key-1234567890" not in str(caught.value)
    assert "sk-wrong-key-1234567890" not in repr(model)


async def test_an_unknown_model_is_permanent(fake: FakeChatCompletions) -> None:
    with pytest.raises(LanguagePermanentError, match="does not exist"):
        await chat_model(fake, model="no-such-model").complete(QUESTION)


async def test_garbage_is_a_bad_response(fake: FakeChatCompletions) -> None:
    fake.fail_next(Fault.malformed())
    with pytest.raises(LanguagePermanentError) as caught:
        await chat_model(fake).complete(QUESTION)
    assert caught.value.code == "provider_bad_response"


async def test_an_empty_caption_is_an_error_not_a_caption(fake: FakeChatCompletions) -> None:
    fake.reply_next("   ")
    with pytest.raises(LanguagePermanentError, match="no text"):
        await chat_model(fake).describe(sample_image(), CaptionStyle.short)


async def test_without_url_or_model_it_says_what_to_set(fake: FakeChatCompletions) -> None:
    async with httpx.AsyncClient() as client:
        no_url = OpenAIChatModel(client=client, base_url=None, api_key=None, model="m")
        no_model = OpenAIChatModel(client=client, base_url=BASE_URL, api_key=None, model=None)
        assert "IMAGESTUDIO_LANGUAGE_URL" in (no_url.configuration_problem() or "")
        assert "IMAGESTUDIO_LANGUAGE_MODEL" in (no_model.configuration_problem() or "")
        for model in (no_url, no_model):
            with pytest.raises(LanguageNotConfiguredError):
                await model.complete(QUESTION)
    assert fake.requests == []
