"""Language and vision models: captions, prompt enhancement, titles and text replies.

Sits beside `providers` and `storage`; imports only config, db, models and kit.
"""

from imagestudio.language.base import (
    CaptionStyle,
    ChatDelta,
    ChatMessage,
    ChatRequest,
    ChatResult,
    LanguageError,
    LanguageModel,
    LanguageNotConfiguredError,
    LanguagePermanentError,
    LanguageRefusedError,
    LanguageRetriableError,
    Usage,
)
from imagestudio.language.registry import LanguageRegistry

__all__ = [
    "CaptionStyle",
    "ChatDelta",
    "ChatMessage",
    "ChatRequest",
    "ChatResult",
    "LanguageError",
    "LanguageModel",
    "LanguageNotConfiguredError",
    "LanguagePermanentError",
    "LanguageRefusedError",
    "LanguageRegistry",
    "LanguageRetriableError",
    "Usage",
]
