"""Local language and vision models with Hugging Face transformers (the optional `transformers` extra).

Two folders, each written by `save_pretrained` (nothing is downloaded at run time):
- a captioning model (image-to-text: a vision encoder-decoder such as ViT-GPT2, or BLIP), used to
  describe images;
- a small text-generation model (causal LM), used to enhance prompts and answer chat turns.
Each is loaded on first use and kept warm; generation runs on a worker thread, off the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from PIL import Image

from imagestudio.language.base import (
    CaptionStyle,
    ChatDelta,
    ChatRequest,
    ChatResult,
    LanguageNotConfiguredError,
    LanguagePermanentError,
    StreamItem,
    Usage,
)
from imagestudio.language.tasks import ChatTasks, clean_answer, prepare_image

log = logging.getLogger(__name__)

CAPTION_NEW_TOKENS = {CaptionStyle.short: 24, CaptionStyle.detailed: 80, CaptionStyle.prompt: 48}


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    image_processor: Any = None


class LocalTransformersModel(ChatTasks):
    name = "transformers"
    kind = "transformers"

    def __init__(
        self,
        *,
        caption_model: Path | None = None,
        text_model: Path | None = None,
        device: str | None = None,
    ) -> None:
        self._caption_path = Path(caption_model) if caption_model else None
        self._text_path = Path(text_model) if text_model else None
        self._device = device or "cpu"
        self._lock = threading.Lock()
        self._caption: _Loaded | None = None
        self._text: _Loaded | None = None

    def __repr__(self) -> str:
        return f"LocalTransformersModel(caption_model={self._caption_path}, text_model={self._text_path})"

    def configuration_problem(self) -> str | None:
        if self._caption_path is None and self._text_path is None:
            return (
                "no local model folder set (IMAGESTUDIO_LANGUAGE_CAPTION_MODEL_PATH, "
                "IMAGESTUDIO_LANGUAGE_TEXT_MODEL_PATH)"
            )
        try:
            import transformers  # noqa: F401
        except ImportError:
            return "transformers is not installed (pip install 'imagestudio[transformers]')"
        return None

    def model_for(self, *, vision: bool) -> str:
        path = self._caption_path if vision else self._text_path
        if path is None:
            what = "captioning" if vision else "text-generation"
            raise LanguageNotConfiguredError(f"no local {what} model folder is set")
        return path.name

    # ---- the contract ----

    async def describe(self, image: Image.Image, style: CaptionStyle, *, model: str | None = None) -> ChatResult:
        loaded = await anyio.to_thread.run_sync(self._caption_model)
        text, usage = await anyio.to_thread.run_sync(self._caption_sync, loaded, image, CAPTION_NEW_TOKENS[style])
        text = clean_answer(text, source="the local captioning model")
        if style == CaptionStyle.prompt:
            text = text.rstrip(".")
        return ChatResult(text, provider=self.name, model=self.model_for(vision=True), usage=usage)

    async def complete(self, request: ChatRequest) -> ChatResult:
        if request.has_images:
            images = [image for message in request.messages for image in message.images]
            return await self.describe(images[0], CaptionStyle.detailed)
        loaded = await anyio.to_thread.run_sync(self._text_model)
        text, usage = await anyio.to_thread.run_sync(self._generate_sync, loaded, request, None)
        return ChatResult(text, provider=self.name, model=self.model_for(vision=False), usage=usage)

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamItem]:
        if request.has_images:
            result = await self.complete(request)
            yield ChatDelta(result.text)
            yield result
            return
        from transformers import TextIteratorStreamer

        loaded = await anyio.to_thread.run_sync(self._text_model)
        streamer = TextIteratorStreamer(loaded.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120)
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["value"] = self._generate_sync(loaded, request, streamer)
            except BaseException as error:  # handed to the event loop below
                outcome["error"] = error
                streamer.end()

        thread = threading.Thread(target=run, name="imagestudio-local-text", daemon=True)
        thread.start()
        pieces = []
        while True:
            piece = await anyio.to_thread.run_sync(_next_or_none, streamer)
            if piece is None:
                break
            if piece:
                pieces.append(piece)
                yield ChatDelta(piece)
        await anyio.to_thread.run_sync(thread.join)
        if "error" in outcome:
            raise outcome["error"]
        _, usage = outcome["value"]
        yield ChatResult("".join(pieces), provider=self.name, model=self.model_for(vision=False), usage=usage)

    async def aclose(self) -> None:
        with self._lock:
            self._caption = self._text = None

    # ---- loading (once, then kept) ----

    def _caption_model(self) -> _Loaded:
        with self._lock:
            if self._caption is None:
                if self._caption_path is None:
                    raise LanguageNotConfiguredError("no local captioning model folder is set")
                from transformers import AutoImageProcessor, AutoModelForImageTextToText, AutoTokenizer

                path = self._checked(self._caption_path)
                log.info("loading the captioning model from %s", path)
                model = AutoModelForImageTextToText.from_pretrained(path, local_files_only=True).to(self._device)
                model.eval()
                self._caption = _Loaded(
                    model=model,
                    tokenizer=AutoTokenizer.from_pretrained(path, local_files_only=True),
                    image_processor=AutoImageProcessor.from_pretrained(path, local_files_only=True),
                )
            return self._caption

    def _text_model(self) -> _Loaded:
        with self._lock:
            if self._text is None:
                if self._text_path is None:
                    raise LanguageNotConfiguredError("no local text-generation model folder is set")
                from transformers import AutoModelForCausalLM, AutoTokenizer

                path = self._checked(self._text_path)
                log.info("loading the text-generation model from %s", path)
                model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).to(self._device)
                model.eval()
                self._text = _Loaded(model=model, tokenizer=AutoTokenizer.from_pretrained(path, local_files_only=True))
            return self._text

    @staticmethod
    def _checked(path: Path) -> Path:
        if not (path / "config.json").is_file():
            raise LanguagePermanentError(f"{path} is not a saved model folder (no config.json)", code="model_missing")
        return path

    # ---- running ----

    def _caption_sync(self, loaded: _Loaded, image: Image.Image, new_tokens: int) -> tuple[str, Usage]:
        import io

        import torch

        picture = Image.open(io.BytesIO(prepare_image(image))).convert("RGB")
        pixels = loaded.image_processor(images=picture, return_tensors="pt").pixel_values.to(self._device)
        with torch.inference_mode():
            output = loaded.model.generate(
                pixel_values=pixels, max_new_tokens=new_tokens, min_new_tokens=min(4, new_tokens), do_sample=False
            )
        text = loaded.tokenizer.decode(output[0], skip_special_tokens=True)
        # An encoder-decoder counts no prompt tokens for the image; the decoder start token is no answer.
        return text, Usage(prompt_tokens=0, completion_tokens=max(0, int(output.shape[-1]) - 1))

    def _generate_sync(self, loaded: _Loaded, request: ChatRequest, streamer: Any) -> tuple[str, Usage]:
        import torch

        tokenizer = loaded.tokenizer
        turns = [{"role": message.role, "content": message.text} for message in request.messages]
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        else:
            prompt = "\n\n".join(f"{turn['role']}: {turn['content']}" for turn in turns) + "\n\nassistant:"
        encoded = tokenizer(prompt, return_tensors="pt")
        # Keep the end of a prompt longer than the model's context (the instructions come last).
        context = _context_length(loaded.model.config)
        new_tokens_allowed = request.max_tokens
        if context is not None:
            new_tokens_allowed = max(1, min(request.max_tokens, context // 2))
            keep = context - new_tokens_allowed
            if encoded["input_ids"].shape[-1] > keep:
                encoded = {name: tensor[:, -keep:] for name, tensor in encoded.items()}
        encoded = {name: tensor.to(self._device) for name, tensor in encoded.items()}
        prompt_length = int(encoded["input_ids"].shape[-1])
        options: dict[str, Any] = {"max_new_tokens": new_tokens_allowed, "min_new_tokens": 1}
        if request.temperature:
            options.update(do_sample=True, temperature=request.temperature)
        else:
            options["do_sample"] = False
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            options["pad_token_id"] = tokenizer.eos_token_id
        with torch.inference_mode():
            output = loaded.model.generate(**encoded, streamer=streamer, **options)
        new_tokens = output[0][prompt_length:]
        text = tokenizer.decode(new_tokens, skip_special_tokens=True)
        return text, Usage(prompt_tokens=prompt_length, completion_tokens=int(new_tokens.shape[-1]))


def _context_length(config: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _next_or_none(streamer: Any) -> str | None:
    try:
        return next(streamer)
    except StopIteration:
        return None
