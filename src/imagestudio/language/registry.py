"""The language models this process can use, built once from the settings.

Every implementation is registered, configured or not, so a request may name one explicitly; the
default is the configured language provider. The built-in describer is always there and always
ready, which is what callers fall back to when a model fails (and record that they did).
"""

from __future__ import annotations

import httpx

from imagestudio.config import Settings
from imagestudio.language.base import LanguageModel, LanguageNotConfiguredError
from imagestudio.language.builtin import BuiltinLanguageModel
from imagestudio.language.gemini_chat import DEFAULT_MODEL as GEMINI_DEFAULT_MODEL
from imagestudio.language.gemini_chat import GeminiChatModel
from imagestudio.language.local import LocalTransformersModel
from imagestudio.language.openai_chat import OpenAIChatModel

BUILTIN = "builtin"


class LanguageRegistry:
    def __init__(self, models: list[LanguageModel] | None = None, *, default: str = BUILTIN) -> None:
        self._models: dict[str, LanguageModel] = {}
        for model in [BuiltinLanguageModel(), *(models or [])]:
            self._models[model.name] = model  # a test's own builtin replaces the stock one
        self._default = default

    @classmethod
    def from_settings(cls, settings: Settings, client: httpx.AsyncClient) -> LanguageRegistry:
        gemini_key = settings.gemini_api_key.get_secret_value() if settings.gemini_api_key else None
        language_key = settings.language_api_key.get_secret_value() if settings.language_api_key else None
        chosen = settings.resolved_language_provider
        models: list[LanguageModel] = [
            OpenAIChatModel(
                client=client,
                base_url=settings.language_url,
                api_key=language_key,
                model=settings.language_model,
                vision_model=settings.vision_model,
                timeout=settings.language_timeout_seconds,
            ),
            GeminiChatModel(
                client=client,
                base_url=settings.gemini_base_url,
                api_key=gemini_key,
                # The language settings name Gemini models when Gemini is the chosen provider.
                model=(settings.language_model if chosen == "gemini" else None) or GEMINI_DEFAULT_MODEL,
                vision_model=settings.vision_model if chosen == "gemini" else None,
                timeout=settings.language_timeout_seconds,
            ),
            LocalTransformersModel(
                caption_model=settings.language_caption_model_path,
                text_model=settings.language_text_model_path,
            ),
        ]
        return cls(models, default=chosen)

    def names(self) -> list[str]:
        return list(self._models)

    def __contains__(self, name: object) -> bool:
        return name in self._models

    @property
    def default_name(self) -> str:
        return self._default if self._default in self._models else BUILTIN

    def get(self, name: str | None = None) -> LanguageModel:
        chosen = name or self.default_name
        try:
            return self._models[chosen]
        except KeyError:
            known = ", ".join(self._models)
            raise LanguageNotConfiguredError(f"unknown language provider {chosen!r}; available: {known}") from None

    def builtin(self) -> LanguageModel:
        return self._models[BUILTIN]

    def problem(self, name: str) -> str | None:
        if name not in self._models:
            return f"unknown language provider {name!r}"
        return self._models[name].configuration_problem()

    async def aclose(self) -> None:
        for model in self._models.values():
            await model.aclose()
