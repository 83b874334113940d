"""Who writes a UI generation's document: a language model (asked for one self-contained HTML
document, shown the image and, when iterating, the code it revises) or the built-in composer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image

from imagestudio.language import ChatMessage, ChatRequest, LanguageModel
from imagestudio.language.registry import BUILTIN
from imagestudio.models.limits import UI_CODE_MAX_TOKENS
from imagestudio.uicode.brief import read_brief
from imagestudio.uicode.composer import COMPOSER_MODEL, compose, title_of
from imagestudio.uicode.document import extract_document

SYSTEM = (
    "You write user-interface code. Answer with exactly one complete, self-contained HTML document "
    "(<!doctype html> ... </html>) in a single ```html code block, nothing else. Put all CSS in <style> "
    "and any JavaScript in <script> inside the document. Make no network requests: no external "
    "stylesheets, scripts, fonts or images, no fetch or XMLHttpRequest; draw pictures with inline SVG or "
    "CSS, or use data: URLs. Make it responsive down to a 390 pixel wide phone and accessible (labels, "
    "contrast, landmarks). Start the document's <title> with a short name for the component."
)
CONTEXT = "Notes for every turn of this conversation (follow them unless the request says otherwise): {context}"
FRESH = "Build this user interface: {prompt}"
FROM_IMAGE = "Build this user interface as HTML, matching the attached image as closely as you can. {prompt}"
REVISE = (
    "Here is the current document:\n```html\n{code}\n```\nRevise it: {prompt}\nAnswer with the whole revised document."
)


@dataclass(frozen=True)
class Draft:
    html: str
    title: str | None
    provider: str
    model: str
    by_ai: bool
    prompt_tokens: int
    completion_tokens: int


def compose_builtin(instructions: Sequence[str], image: Image.Image | None, *, context: str = "") -> Draft:
    """The built-in composer's page for a line of instructions (oldest first); the session's context
    sets the starting look (e.g. "brand colour green, dark")."""
    brief = read_brief(instructions, image, context=context)
    return Draft(compose(brief), title_of(brief), BUILTIN, COMPOSER_MODEL, False, 0, 0)


async def ask_model(
    model: LanguageModel,
    *,
    model_id: str,
    prompt: str,
    image: Image.Image | None,
    previous_code: str | None,
    context: str = "",
) -> Draft:
    if previous_code is not None:
        text = REVISE.format(code=previous_code, prompt=prompt)
    elif image is not None:
        text = FROM_IMAGE.format(prompt=prompt).strip()
    else:
        text = FRESH.format(prompt=prompt)
    system = f"{SYSTEM}\n\n{CONTEXT.format(context=context.strip())}" if context.strip() else SYSTEM
    request = ChatRequest(
        messages=[ChatMessage("system", system), ChatMessage("user", text, images=(image,) if image else ())],
        model=model_id,
        max_tokens=UI_CODE_MAX_TOKENS,
    )
    result = await model.complete(request)
    return Draft(
        extract_document(result.text),
        None,
        result.provider,
        result.model,
        result.by_ai,
        result.usage.prompt_tokens,
        result.usage.completion_tokens,
    )
