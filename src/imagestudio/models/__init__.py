"""All tables, importable from one place; importing this module registers them on Base.metadata."""

from imagestudio.models.accounts import ApiKey, AuthSession, Project, User, UserSettings
from imagestudio.models.assets import Asset, Caption
from imagestudio.models.audit import AuditEvent
from imagestudio.models.base import Base
from imagestudio.models.enums import (
    FINAL_STATUSES,
    CaptionStyle,
    EventType,
    GenerationType,
    InputPurpose,
    MessageRole,
    MessageType,
    ProjectStatus,
    PromptMethod,
    RunStatus,
    Theme,
)
from imagestudio.models.generations import Generation, GenerationEvent, GenerationInput
from imagestudio.models.sessions import DEFAULT_SESSION_TITLE, ChatSession, Message, MessageAttachment
from imagestudio.models.system import ProviderRecord, RateCounter, UsageCounter

metadata = Base.metadata

__all__ = [
    "DEFAULT_SESSION_TITLE",
    "FINAL_STATUSES",
    "ApiKey",
    "Asset",
    "AuditEvent",
    "AuthSession",
    "Base",
    "Caption",
    "CaptionStyle",
    "ChatSession",
    "EventType",
    "Generation",
    "GenerationEvent",
    "GenerationInput",
    "GenerationType",
    "InputPurpose",
    "Message",
    "MessageAttachment",
    "MessageRole",
    "MessageType",
    "Project",
    "ProjectStatus",
    "PromptMethod",
    "ProviderRecord",
    "RateCounter",
    "RunStatus",
    "Theme",
    "UsageCounter",
    "User",
    "UserSettings",
    "metadata",
]
