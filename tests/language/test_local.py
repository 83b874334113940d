"""The local transformers model against tiny randomly initialised models built offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagestudio.language.base import CaptionStyle, ChatMessage, ChatRequest, LanguageNotConfiguredError
from imagestudio.language.local import LocalTransformersModel
from tests.language.conformance import LanguageConformance, sample_image
from tests.language.local_fixtures import build_tiny_caption_model, build_tiny_text_model

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("tiny-language-models")
    return build_tiny_caption_model(root / "tiny-captioner"), build_tiny_text_model(root / "tiny-writer")


class TestLocalConformance(LanguageConformance):
    @pytest.fixture
    def model(self, tiny_models: tuple[Path, Path]) -> LocalTransformersModel:
        caption, text = tiny_models
        return LocalTransformersModel(caption_model=caption, text_model=text)


async def test_models_load_once_and_stay_warm(tiny_models: tuple[Path, Path]) -> None:
    caption, text = tiny_models
    model = LocalTransformersModel(caption_model=caption, text_model=text)
    first = await model.describe(sample_image(), CaptionStyle.short)
    loaded = model._caption
    again = await model.describe(sample_image(), CaptionStyle.short)
    assert model._caption is loaded, "the second caption reuses the loaded model"
    assert first.text == again.text, "greedy decoding of the same picture gives the same words"
    assert first.model == "tiny-captioner" and first.usage.completion_tokens > 0
    assert model._text is None, "the text model is loaded only when text is asked for"


async def test_usage_counts_the_prompt_and_the_answer(tiny_models: tuple[Path, Path]) -> None:
    model = LocalTransformersModel(text_model=tiny_models[1])
    request = ChatRequest([ChatMessage("user", "hello")], max_tokens=5)
    result = await model.complete(request)
    # One token per byte with this tokenizer: "user: hello\n\nassistant:" is 24 bytes.
    assert result.usage.prompt_tokens == len("user: hello\n\nassistant:")
    assert 1 <= result.usage.completion_tokens <= 5


async def test_a_missing_folder_says_what_to_set(tmp_path: Path) -> None:
    nothing = LocalTransformersModel()
    assert "IMAGESTUDIO_LANGUAGE_CAPTION_MODEL_PATH" in (nothing.configuration_problem() or "")
    text_only = LocalTransformersModel(text_model=tmp_path)
    with pytest.raises(LanguageNotConfiguredError):
        await text_only.describe(sample_image(), CaptionStyle.short)
    captions_only = LocalTransformersModel(caption_model=tmp_path)
    with pytest.raises(LanguageNotConfiguredError):
        await captions_only.enhance("a fox", {})
