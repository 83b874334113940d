"""A tiny, randomly initialised Stable Diffusion pipeline built offline, for tests and benchmarks.

Every component is a real diffusers/transformers class at toy size, so the provider exercises the same
loading, scheduling and batching code it runs with real weights; the pictures are noise, which is all a
test of plumbing needs. Weights are seeded, so two builds are identical.
"""

from __future__ import annotations

import json
from pathlib import Path

# CLIP's tokenizer works on bytes mapped to printable unicode characters; these words get BPE merges
# so that typical test prompts tokenize into whole words rather than single characters.
_WORDS = (
    "a", "an", "the", "of", "in", "on", "with", "and", "photo", "painting", "cat", "dog", "red", "blue",
    "green", "house", "tree", "sky", "sunset", "mountain", "lake", "portrait", "blurry", "ugly", "low",
    "quality", "forest", "city", "night", "river",
)
TEXT_VOCAB_SIZE = 1000
TOKENIZER_MAX_LENGTH = 77


def _bytes_to_unicode() -> dict[int, str]:
    """The GPT-2/CLIP reversible byte to printable character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes), strict=True))


def write_tiny_clip_tokenizer_files(folder: Path) -> tuple[dict[str, int], list[str]]:
    """Write vocab.json and merges.txt for a byte-level BPE vocabulary of at most TEXT_VOCAB_SIZE ids."""
    symbols = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for token in symbols + [s + "</w>" for s in symbols]:
        vocab.setdefault(token, len(vocab))
    merges: list[str] = []
    for word in _WORDS:
        pieces = [*word[:-1], word[-1] + "</w>"]
        while len(pieces) > 1:
            merged = pieces[0] + pieces[1]
            rule = f"{pieces[0]} {pieces[1]}"
            if rule not in merges:
                merges.append(rule)
                vocab.setdefault(merged, len(vocab))
            pieces = [merged, *pieces[2:]]
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    if len(vocab) > TEXT_VOCAB_SIZE:
        raise ValueError(f"tiny vocabulary has {len(vocab)} tokens, more than {TEXT_VOCAB_SIZE}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    return vocab, merges


def build_tiny_sd_pipeline(folder: Path, *, seed: int = 0) -> Path:
    """Build a toy Stable Diffusion 1.x-shaped pipeline and save it with save_pretrained into folder."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    tokenizer_source = folder.parent / f"{folder.name}-tokenizer-source"
    vocab, _ = write_tiny_clip_tokenizer_files(tokenizer_source)
    tokenizer = CLIPTokenizer.from_pretrained(tokenizer_source, model_max_length=TOKENIZER_MAX_LENGTH)

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"],
        latent_channels=4,
        sample_size=32,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-05,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=TEXT_VOCAB_SIZE,
            max_position_embeddings=TOKENIZER_MAX_LENGTH,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return folder
