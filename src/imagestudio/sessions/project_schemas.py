"""Request and response shapes of /api/v1/projects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, field_validator, model_validator

from imagestudio.accounts.schemas import RequestModel
from imagestudio.generations.spec import PromptOptions
from imagestudio.kit.openapi import bounded_int, not_null
from imagestudio.models import limits

ProjectName = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=limits.PROJECT_DESCRIPTION_MAX_LENGTH)]
Status = Literal["draft", "active", "completed", "archived"]


def _name_not_blank(value: str | None) -> str | None:
    if value is None:
        raise ValueError("may not be null")
    if not value.strip():
        raise ValueError("may not be blank")
    return value.strip()


class ProjectParams(RequestModel):
    """Sampling defaults, within the limits a request has; every bound is stated in the schema."""

    steps: Annotated[bounded_int(limits.STEPS_MIN, limits.STEPS_MAX) | None, Field(json_schema_extra=not_null)] = None
    guidance: Annotated[
        StrictFloat | None, Field(ge=limits.GUIDANCE_MIN, le=limits.GUIDANCE_MAX, json_schema_extra=not_null)
    ] = None
    strength: Annotated[
        StrictFloat | None, Field(ge=limits.STRENGTH_MIN, le=limits.STRENGTH_MAX, json_schema_extra=not_null)
    ] = None
    scheduler: Annotated[
        str | None, Field(min_length=1, max_length=limits.SCHEDULER_MAX_LENGTH, json_schema_extra=not_null)
    ] = None
    seed: Annotated[bounded_int(limits.SEED_MIN, limits.SEED_MAX) | None, Field(json_schema_extra=not_null)] = None

    @field_validator("steps", "guidance", "strength", "scheduler", "seed")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; leave it out for no default")
        return value


_SETTINGS_RULES = {
    # What the server checks beyond each field, stated for generated clients.
    "dependentRequired": {"model": ["provider"], "width": ["height"], "height": ["width"]},
}


class ProjectSettings(RequestModel):
    """Defaults for the project's sessions, within the limits a request has (models/limits.py). A
    request's own fields win over them, and they win over the owner's settings. The provider must be
    one this studio has, and the model one it lists. Leave a field out for no default."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_SETTINGS_RULES)

    provider: Annotated[str | None, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", json_schema_extra=not_null)] = None
    model: Annotated[
        str | None, Field(min_length=1, max_length=limits.MODEL_ID_MAX_LENGTH, json_schema_extra=not_null)
    ] = None
    width: Annotated[bounded_int(limits.SIDE_MIN, limits.SIDE_MAX) | None, Field(json_schema_extra=not_null)] = None
    height: Annotated[bounded_int(limits.SIDE_MIN, limits.SIDE_MAX) | None, Field(json_schema_extra=not_null)] = None
    aspect_ratio: Annotated[str | None, Field(pattern=limits.ASPECT_RATIO_PATTERN, json_schema_extra=not_null)] = None
    params: ProjectParams = Field(default_factory=ProjectParams)
    prompt_options: PromptOptions = Field(default_factory=PromptOptions)

    @field_validator("provider", "model", "width", "height", "aspect_ratio")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null; leave it out for no default")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProjectSettings:
        if self.model is not None and self.provider is None:
            raise ValueError("a model needs its provider")
        if (self.width is None) != (self.height is None):
            raise ValueError("width and height go together")
        return self

    def stored(self) -> dict:
        """As kept in projects.settings: only what is set."""
        values = self.model_dump(exclude_none=True, exclude={"params", "prompt_options"})
        params = self.params.model_dump(exclude_none=True)
        options = self.prompt_options.model_dump(exclude_defaults=True)
        return {**values, **({"params": params} if params else {}), **({"prompt_options": options} if options else {})}


class ProjectCreate(RequestModel):
    name: ProjectName
    description: Description = ""
    status: Status = "active"
    settings: ProjectSettings = Field(default_factory=ProjectSettings)
    # True publishes the project at once: the answer carries its public link.
    is_public: StrictBool = False

    _check_name = field_validator("name")(_name_not_blank)


class ProjectUpdate(RequestModel):
    name: Annotated[ProjectName | None, Field(json_schema_extra=not_null)] = None
    description: Annotated[Description | None, Field(json_schema_extra=not_null)] = None
    status: Annotated[Status | None, Field(json_schema_extra=not_null)] = None
    # Replaces the settings as a whole ({} clears them).
    settings: Annotated[ProjectSettings | None, Field(json_schema_extra=not_null)] = None
    # true publishes (a new link, shown once); false revokes the link at once.
    is_public: Annotated[StrictBool | None, Field(json_schema_extra=not_null)] = None

    _check_name = field_validator("name")(_name_not_blank)

    @field_validator("description", "status", "settings", "is_public")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may not be null")
        return value


class ProjectOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    status: str
    settings: dict
    is_public: bool
    published_at: datetime | None
    # The public link, only in the answer that made it (it is stored hashed and cannot be shown again).
    public_url: str | None = None
    created_at: datetime
    updated_at: datetime
