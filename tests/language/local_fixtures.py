"""Tiny, randomly initialised transformers models built offline, for the local language model.

A GPT-2-shaped text generator and a ViT-GPT2 vision encoder-decoder (the architecture of common
captioning checkpoints), at toy size, saved with save_pretrained exactly as real folders are. Their
words are noise; what the tests check is the plumbing: loading, generation, streaming, token counts.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.providers.diffusers_fixtures import _bytes_to_unicode

END = "<|endoftext|>"


def _write_tokenizer(folder: Path) -> int:
    """A byte-level BPE tokenizer with one token per byte and no merges: every text encodes."""
    from transformers import GPT2Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {symbol: index for index, symbol in enumerate(_bytes_to_unicode().values())}
    vocab[END] = len(vocab)
    source = folder.parent / f"{folder.name}-tokenizer-source"
    source.mkdir(parents=True, exist_ok=True)
    (source / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (source / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    tokenizer = GPT2Tokenizer(str(source / "vocab.json"), str(source / "merges.txt"))
    tokenizer.save_pretrained(folder)
    return len(vocab)


def _gpt2_config(vocab_size: int, **extra: object):
    from transformers import GPT2Config

    end = vocab_size - 1
    return GPT2Config(
        vocab_size=vocab_size,
        n_positions=256,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=end,
        eos_token_id=end,
        **extra,
    )


def build_tiny_text_model(folder: Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import GPT2LMHeadModel

    vocab_size = _write_tokenizer(folder)
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(_gpt2_config(vocab_size))
    model.save_pretrained(folder)
    return folder


def build_tiny_caption_model(folder: Path, *, seed: int = 0) -> Path:
    import torch
    from transformers import (
        GPT2LMHeadModel,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
    )

    vocab_size = _write_tokenizer(folder)
    torch.manual_seed(seed)
    encoder = ViTModel(
        ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
    )
    decoder = GPT2LMHeadModel(_gpt2_config(vocab_size, add_cross_attention=True, is_decoder=True))
    model = VisionEncoderDecoderModel(encoder=encoder, decoder=decoder)
    end = vocab_size - 1
    model.config.decoder_start_token_id = end
    model.config.pad_token_id = end
    model.config.eos_token_id = end
    model.generation_config.decoder_start_token_id = end
    model.generation_config.pad_token_id = end
    model.generation_config.eos_token_id = end
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder
