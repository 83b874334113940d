"""Request and answer shapes of the OpenAI-compatible Images API, as OpenAI documents them.

Types are strict (OpenAI refuses `n: "2"` and `n: 2.5`), unknown fields are refused, and values
outside OpenAI's sets are refused with the field named, so a client learns the same things from us
as from OpenAI.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

MAX_PROMPT_CHARS = 4000
SIZE_PATTERN = r"^(auto|[1-9][0-9]{1,4}x[1-9][0-9]{1,4})$"

Quality = Literal["auto", "low", "medium", "high", "standard", "hd"]
Background = Literal["auto", "transparent", "opaque"]
OutputFormat = Literal["png", "jpeg", "webp"]
ResponseFormat = Literal["url", "b64_json"]


class ImageOptions(BaseModel):
    """What generations and edits share."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    model: str | None = Field(default=None, min_length=1, max_length=270)
    n: StrictInt | None = Field(default=None, ge=1, le=10)
    size: str | None = Field(default=None, pattern=SIZE_PATTERN)
    quality: Quality | None = None
    background: Background | None = None
    output_format: OutputFormat | None = None
    output_compression: StrictInt | None = Field(default=None, ge=0, le=100)
    moderation: Literal["auto", "low"] | None = None
    response_format: ResponseFormat | None = None
    user: str | None = Field(default=None, max_length=256)
    safety_identifier: str | None = Field(default=None, max_length=256)
    stream: StrictBool | None = None
    partial_images: StrictInt | None = Field(default=None, ge=0, le=3)
    input_fidelity: Literal["low", "high"] | None = None


class ImageGenerationBody(ImageOptions):
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    style: Literal["vivid", "natural"] | None = None


class ImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class ImagesResponse(BaseModel):
    created: int
    data: list[ImageData]
    background: Literal["transparent", "opaque"] | None = None
    output_format: OutputFormat | None = None
    quality: str | None = None
    size: str | None = None
    usage: dict | None = None


class ModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]
