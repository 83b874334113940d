"""The studio's tasks phrased for a chat model, and the template that enhances prompts without one.

`ChatTasks` gives any implementation of `complete` the `describe` and `enhance` methods of the
contract, so every chat-capable model words its instructions the same way.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

from PIL import Image, ImageOps

from imagestudio.language.base import (
    PROMPT_OPTION_NAMES,
    CaptionStyle,
    ChatMessage,
    ChatRequest,
    ChatResult,
    LanguagePermanentError,
)

# Images are scaled down to this longest side before they are sent: enough for a caption, and
# it bounds what a vision model bills for one picture.
MAX_IMAGE_SIDE = 1024

CAPTION_INSTRUCTIONS = {
    CaptionStyle.short: "Describe this image in one short sentence.",
    CaptionStyle.detailed: (
        "Describe this image in a detailed paragraph: subject, setting, composition, colours, lighting and mood."
    ),
    CaptionStyle.prompt: (
        "Write a single text-to-image prompt that would recreate this image: subject, setting, "
        "style, composition, lighting and colours, as comma-separated phrases. Answer with the prompt only."
    ),
}
CAPTION_MAX_TOKENS = {CaptionStyle.short: 60, CaptionStyle.detailed: 400, CaptionStyle.prompt: 200}

TITLE_INSTRUCTION = (
    "Give a short title, at most six words, for a conversation that starts with this request to an image "
    "generator. Answer with the title only, without quotes.\n\nRequest: {text}"
)
TITLE_MAX_LENGTH = 80

ENHANCE_SYSTEM = (
    "You rewrite prompts for an image generator. Keep the user's subject and intent, add concrete "
    "visual detail (composition, lighting, style, colour), and answer with the rewritten prompt only, "
    "in one paragraph of at most 80 words, without quotes or commentary."
)


SESSION_CONTEXT = (
    "The person's notes for this conversation follow. Respect them wherever they apply "
    "(they are context, not a request of their own):\n\n{context}"
)


def context_messages(context: str | None) -> list[ChatMessage]:
    """The session's note as a system message (none when the session has no note)."""
    if context is None or not context.strip():
        return []
    return [ChatMessage("system", SESSION_CONTEXT.format(context=context.strip()))]


def enhance_instruction(prompt: str, options: Mapping[str, object], caption: str | None) -> str:
    lines = [f"Prompt: {prompt.strip()}"]
    chosen = {name: options.get(name) for name in PROMPT_OPTION_NAMES if options.get(name)}
    if chosen:
        lines.append("Options: " + "; ".join(f"{name.replace('_', ' ')}: {value}" for name, value in chosen.items()))
    if caption:
        lines.append(f"The image being changed shows: {caption.strip()}")
    return "\n".join(lines)


# How each prompt option is phrased after the prompt (the builder's values read well mid-sentence).
OPTION_PHRASES = (
    ("shot_type", "{}"),
    ("camera_angle", "{}"),
    ("style", "{} style"),
    ("location", "set in {}"),
    ("lighting", "{} lighting"),
    ("weather", "{} weather"),
)


def template_prompt(prompt: str, options: Mapping[str, object]) -> str:
    """The prompt with its options phrased after it: enhancement without a language model."""
    phrases = [
        template.format(str(value).strip())
        for name, template in OPTION_PHRASES
        if isinstance(value := options.get(name), str) and value.strip()
    ]
    base = prompt.strip().rstrip(" ,.;")
    return ", ".join(part for part in [base, *phrases] if part)


def prepare_image(image: Image.Image) -> bytes:
    """The image as a PNG a model can read: orientation applied, RGB, at most MAX_IMAGE_SIDE."""
    picture = ImageOps.exif_transpose(image)
    if picture.mode not in ("RGB", "L"):
        picture = picture.convert("RGBA")
        flat = Image.new("RGB", picture.size, (255, 255, 255))
        flat.paste(picture, mask=picture.getchannel("A"))
        picture = flat
    if max(picture.size) > MAX_IMAGE_SIDE:
        picture = picture.copy()
        picture.thumbnail((MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def clean_answer(text: str, *, source: str) -> str:
    """The model's text without surrounding whitespace or quotes; an empty answer is an error."""
    cleaned = text.strip()
    if len(cleaned) >= 2 and cleaned[0] == cleaned[-1] and cleaned[0] in "\"'":
        cleaned = cleaned[1:-1].strip()
    if not cleaned:
        raise LanguagePermanentError(f"{source} answered with no text", code="provider_bad_response")
    return cleaned


class ChatTasks:
    """describe() and enhance() for models whose complete() does the work."""

    name: str

    async def complete(self, request: ChatRequest) -> ChatResult:
        raise NotImplementedError

    async def describe(self, image: Image.Image, style: CaptionStyle, *, model: str | None = None) -> ChatResult:
        request = ChatRequest(
            messages=[ChatMessage("user", CAPTION_INSTRUCTIONS[style], images=[image])],
            model=model,
            max_tokens=CAPTION_MAX_TOKENS[style],
        )
        result = await self.complete(request)
        return _with_text(result, clean_answer(result.text, source=self.name))

    async def title(self, text: str, *, context: str | None = None) -> ChatResult:
        """A short title for a session that starts with this prompt."""
        messages = [*context_messages(context), ChatMessage("user", TITLE_INSTRUCTION.format(text=text.strip()))]
        result = await self.complete(ChatRequest(messages, max_tokens=24))
        title = " ".join(clean_answer(result.text, source=self.name).split()).rstrip(".")
        return _with_text(result, title[:TITLE_MAX_LENGTH])

    async def enhance(
        self,
        prompt: str,
        options: Mapping[str, object],
        *,
        caption: str | None = None,
        model: str | None = None,
        context: str | None = None,
    ) -> ChatResult:
        request = ChatRequest(
            messages=[
                ChatMessage("system", ENHANCE_SYSTEM),
                *context_messages(context),
                ChatMessage("user", enhance_instruction(prompt, options, caption)),
            ],
            model=model,
            max_tokens=200,
        )
        result = await self.complete(request)
        return _with_text(result, clean_answer(result.text, source=self.name))


def _with_text(result: ChatResult, text: str) -> ChatResult:
    return ChatResult(text=text, provider=result.provider, model=result.model, usage=result.usage, by_ai=result.by_ai)
