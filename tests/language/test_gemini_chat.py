"""Gemini text and vision against a fake speaking the real generateContent wire format."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from imagestudio.language.base import (
    CaptionStyle,
    ChatDelta,
    ChatMessage,
    ChatRequest,
    LanguageNotConfiguredError,
    LanguagePermanentError,
    LanguageRefusedError,
    LanguageRetriableError,
)
from tests.fakes.chat_gemini import FakeGeminiText, gemini_chat_model
from tests.fakes.common import Fault
from tests.language.conformance import LanguageConformance, sample_image

pytestmark = pytest.mark.anyio

QUESTION = ChatRequest(
    [ChatMessage("system", "You help with pictures."), ChatMessage("user", "describe step three please")],
    max_tokens=40,
)


@pytest.fixture
def fake() -> FakeGeminiText:
    return FakeGeminiText()


class TestGeminiChatConformance(LanguageConformance):
    @pytest.fixture
    async def model(self, fake: FakeGeminiText):
        model = gemini_chat_model(fake)
        yield model
        await model._client.aclose()


async def test_the_request_has_the_wire_shape(fake: FakeGeminiText) -> None:
    result = await gemini_chat_model(fake).describe(sample_image((200, 120)), CaptionStyle.detailed)
    assert fake.last.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert fake.last.headers["x-goog-api-key"] == fake.api_key
    assert "key" not in fake.last.query, "the key never goes in the URL"
    parts = fake.last.json["contents"][0]["parts"]
    assert "detailed paragraph" in parts[0]["text"]
    inline = parts[1]["inline_data"]
    assert inline["mime_type"] == "image/png"
    assert Image.open(io.BytesIO(base64.b64decode(inline["data"]))).size == (200, 120)
    assert result.text.startswith("A picture of 200x120 pixels")
    assert fake.last.json["generationConfig"]["maxOutputTokens"] == 400

    await gemini_chat_model(fake).complete(QUESTION)
    sent = fake.last.json
    assert sent["systemInstruction"] == {"parts": [{"text": "You help with pictures."}]}
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "describe step three please"}]}]


async def test_usage_comes_from_usage_metadata(fake: FakeGeminiText) -> None:
    fake.reply_next("a quiet harbour at dawn")
    result = await gemini_chat_model(fake).complete(QUESTION)
    assert result.text == "a quiet harbour at dawn"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (4, 5)
    assert result.model == "gemini-2.5-flash"


async def test_streaming_uses_sse_and_reads_usage_from_the_last_event(fake: FakeGeminiText) -> None:
    fake.reply_next("fog over the water")
    items = [item async for item in gemini_chat_model(fake).stream(QUESTION)]
    assert fake.last.path.endswith(":streamGenerateContent") and fake.last.query == {"alt": "sse"}
    assert [item.text for item in items if isinstance(item, ChatDelta)] == ["fog", " over", " the", " water"]
    assert items[-1].text == "fog over the water"
    assert items[-1].usage.completion_tokens == 4


async def test_429_is_retriable_with_the_retry_info_delay(fake: FakeGeminiText) -> None:
    fake.fail_next(Fault.rate_limit(retry_after=21))
    with pytest.raises(LanguageRetriableError) as caught:
        await gemini_chat_model(fake).complete(QUESTION)
    assert caught.value.retry_after == 21 and caught.value.code == "provider_rate_limited"


async def test_503_is_retriable(fake: FakeGeminiText) -> None:
    fake.fail_next(Fault.server_error(503))
    with pytest.raises(LanguageRetriableError):
        await gemini_chat_model(fake).complete(QUESTION)


@pytest.mark.parametrize("where", ["prompt", "answer"])
async def test_refusals_are_content_refusals(fake: FakeGeminiText, where: str) -> None:
    model = gemini_chat_model(fake)
    fake.fail_next(Fault.content_rejection(where=where))
    with pytest.raises(LanguageRefusedError):
        await model.describe(sample_image(), CaptionStyle.short)
    fake.fail_next(Fault.content_rejection(where=where))
    with pytest.raises(LanguageRefusedError):
        async for _ in model.stream(QUESTION):
            pass


async def test_a_slow_service_times_out_as_retriable(fake: FakeGeminiText) -> None:
    fake.fail_next(Fault.slow(30))
    with pytest.raises(LanguageRetriableError) as caught:
        await gemini_chat_model(fake, timeout=0.5).complete(QUESTION)
    assert caught.value.code == "provider_timeout"


async def test_a_wrong_key_is_permanent_and_never_echoed(fake: FakeGeminiText) -> None:
    model = gemini_chat_model(fake, api_key="AIzaWrongKeyThatLeaks")
    with pytest.raises(LanguagePermanentError) as caught:
        await model.complete(QUESTION)
    assert caught.value.code == "provider_auth_failed"
    assert "AIzaWrongKeyThatLeaks" not in str(caught.value) and "AIzaWrongKeyThatLeaks" not in repr(model)


async def test_without_a_key_it_is_not_configured(fake: FakeGeminiText) -> None:
    model = gemini_chat_model(fake, api_key="")
    assert "IMAGESTUDIO_GEMINI_API_KEY" in (model.configuration_problem() or "")
    with pytest.raises(LanguageNotConfiguredError):
        await model.describe(sample_image(), CaptionStyle.short)
    assert fake.requests == []
