"""The conformance suite every language model passes.

Subclass it in a class whose name starts with ``Test`` and override the ``model`` fixture::

    class TestMyModelConformance(LanguageConformance):
        @pytest.fixture
        async def model(self, fake):
            yield MyModel(client=fake.client)

Knobs: ``chats`` (False for a model that answers no questions, which must then say so with
LanguageNotConfiguredError), ``by_ai`` (False for the built-in describer).
"""

from __future__ import annotations

from typing import ClassVar

import pytest
from PIL import Image, ImageDraw

from imagestudio.language.base import (
    CaptionStyle,
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResult,
    LanguageModel,
    LanguageNotConfiguredError,
)

pytestmark = pytest.mark.anyio


def sample_image(size: tuple[int, int] = (96, 64)) -> Image.Image:
    image = Image.new("RGB", size, (30, 60, 170))
    ImageDraw.Draw(image).ellipse((10, 10, size[0] // 2, size[1] - 10), fill=(240, 200, 40))
    return image


class LanguageConformance:
    chats: ClassVar[bool] = True
    by_ai: ClassVar[bool] = True

    @pytest.fixture
    def model(self) -> LanguageModel:
        raise NotImplementedError("override the model fixture")

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    def _check_result(self, result: ChatResult, model: LanguageModel) -> None:
        assert isinstance(result, ChatResult)
        assert result.text.strip(), "an answer has text"
        assert result.provider == model.name
        assert result.model
        assert result.usage.prompt_tokens >= 0 and result.usage.completion_tokens >= 0
        assert result.by_ai is self.by_ai

    async def test_implements_the_protocol(self, model: LanguageModel) -> None:
        assert isinstance(model, LanguageModel)
        assert model.configuration_problem() is None
        assert model.model_for(vision=True) and model.model_for(vision=False)

    @pytest.mark.parametrize("style", list(CaptionStyle))
    async def test_describes_an_image_in_every_style(self, model: LanguageModel, style: CaptionStyle) -> None:
        result = await model.describe(sample_image(), style)
        self._check_result(result, model)

    async def test_describes_images_of_any_mode(self, model: LanguageModel) -> None:
        for image in (sample_image().convert("RGBA"), sample_image().convert("P"), sample_image().convert("L")):
            self._check_result(await model.describe(image, CaptionStyle.short), model)

    async def test_enhances_a_prompt_with_options(self, model: LanguageModel) -> None:
        result = await model.enhance(
            "a lighthouse", {"shot_type": "wide", "lighting": "golden hour"}, caption="a grey coast"
        )
        self._check_result(result, model)

    async def test_titles_a_conversation(self, model: LanguageModel) -> None:
        if not self.chats:
            with pytest.raises(LanguageNotConfiguredError):
                await model.title("a lighthouse on a cliff at sunset")
            return
        result = await model.title("a lighthouse on a cliff at sunset")
        self._check_result(result, model)
        assert len(result.text) <= 80 and "\n" not in result.text

    async def test_complete_and_stream_agree(self, model: LanguageModel) -> None:
        request = ChatRequest([ChatMessage("user", "what would make this more cinematic?")], max_tokens=16)
        if not self.chats:
            with pytest.raises(LanguageNotConfiguredError):
                await model.complete(request)
            with pytest.raises(LanguageNotConfiguredError):
                async for _ in model.stream(request):
                    pass
            return
        self._check_result(await model.complete(request), model)
        items = [item async for item in model.stream(request)]
        deltas, final = items[:-1], items[-1]
        assert isinstance(final, ChatResult), "a stream ends with the whole result"
        assert all(isinstance(item, ChatDelta) for item in deltas)
        assert deltas, "a stream yields at least one delta"
        assert "".join(delta.text for delta in deltas) == final.text
        self._check_result(final, model)

    async def test_a_request_may_carry_an_image(self, model: LanguageModel) -> None:
        request = ChatRequest([ChatMessage("user", "what is in this picture?", images=[sample_image()])])
        if not self.chats:
            with pytest.raises(LanguageNotConfiguredError):
                await model.complete(request)
            return
        self._check_result(await model.complete(request), model)
