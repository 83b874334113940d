"""All tables, importable from one place; importing this module registers them on Base.metadata."""

from imagestudio.models.accounts import (
    AccountToken,
    ApiKey,
    AuthSession,
    Project,
    User,
    UserProviderKey,
    UserSettings,
)
from imagestudio.models.assets import Asset, Caption
from imagestudio.models.audit import AuditEvent
from imagestudio.models.base import Base
from imagestudio.models.enums import (
    FINAL_STATUSES,
    LANGUAGE_TYPES,
    CaptionStyle,
    EventType,
    GenerationType,
    InputPurpose,
    MailStatus,
    MessageRole,
    MessageType,
    ProjectStatus,
    PromptMethod,
    RunStatus,
    Theme,
    TokenPurpose,
)
from imagestudio.models.generations import BatchImage, EventCounter, Generation, GenerationEvent, GenerationInput
from imagestudio.models.mail import OutboxMail
from imagestudio.models.sessions import DEFAULT_SESSION_TITLE, ChatSession, Message, MessageAttachment
from imagestudio.models.system import ProviderKeyPolicy, ProviderRecord, RateCounter, StudioSettings, UsageCounter
from imagestudio.models.uicode import UiGeneration

metadata = Base.metadata

__all__ = [
    "DEFAULT_SESSION_TITLE",
    "FINAL_STATUSES",
    "LANGUAGE_TYPES",
    "AccountToken",
    "ApiKey",
    "Asset",
    "AuditEvent",
    "AuthSession",
    "Base",
    "BatchImage",
    "Caption",
    "CaptionStyle",
    "ChatSession",
    "EventCounter",
    "EventType",
    "Generation",
    "GenerationEvent",
    "GenerationInput",
    "GenerationType",
    "InputPurpose",
    "MailStatus",
    "Message",
    "MessageAttachment",
    "MessageRole",
    "MessageType",
    "OutboxMail",
    "Project",
    "ProjectStatus",
    "PromptMethod",
    "ProviderKeyPolicy",
    "ProviderRecord",
    "RateCounter",
    "RunStatus",
    "StudioSettings",
    "Theme",
    "TokenPurpose",
    "UiGeneration",
    "UsageCounter",
    "User",
    "UserProviderKey",
    "UserSettings",
    "metadata",
]
