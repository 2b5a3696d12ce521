"""`jstyleid make-model`: randomly initialised models with exactly SD 2.1's block structure.

tiny      -- small widths, 64 px images; a 50-step inversion runs on a CPU in seconds.
sd21      -- full size (865.9 M-parameter U-Net, v-prediction, 768 px) for GPU benchmarks.
sd21-base -- full size, epsilon prediction, 512 px.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


_SD21_UNET = dict(
    block_out_channels=(320, 640, 1280, 1280), attention_head_dim=(5, 10, 20, 20), layers_per_block=2,
    cross_attention_dim=1024, norm_num_groups=32,
)
_SD21_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32)
_SD21_TEXT = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                  projection_dim=512)
PRESETS = {
    "tiny": dict(
        unet=dict(block_out_channels=(32, 32, 64, 64), attention_head_dim=(2, 2, 4, 4), layers_per_block=2,
                  cross_attention_dim=32, norm_num_groups=8, upcast_attention=True),
        vae=dict(block_out_channels=(32, 32, 32, 32), layers_per_block=1, norm_num_groups=8),
        text=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
                  projection_dim=32),
        resolution=64, prediction_type="v_prediction",
    ),
    "sd21": dict(unet=dict(_SD21_UNET, upcast_attention=True), vae=_SD21_VAE, text=_SD21_TEXT,
                 resolution=768, prediction_type="v_prediction"),
    "sd21-base": dict(unet=dict(_SD21_UNET, upcast_attention=False), vae=_SD21_VAE, text=_SD21_TEXT,
                      resolution=512, prediction_type="epsilon"),
}

# Words the toy BPE learns its merges from; any text still tokenizes (byte-level fallback).
_CORPUS = ("a an the in of and with style painting photo picture drawing image of art ring cat dog house "
           "tree flower car bird mountain river city portrait landscape water sky sun moon star") * 3


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte -> printable character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


def write_clip_tokenizer(folder: Path, num_merges: int = 64) -> int:
    """A small byte-level CLIP BPE (vocab.json, merges.txt) learned from a toy corpus; returns vocab size."""
    base = list(_bytes_to_unicode().values())
    vocab = base + [c + "</w>" for c in base]
    words = Counter(tuple(w[:-1]) + (w[-1] + "</w>",) for w in _CORPUS.split())
    merges = []
    for _ in range(num_merges):
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=lambda p: (pairs[p], p))
        merges.append(best)
        vocab.append("".join(best))
        merged = Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "!",
        "do_lower_case": True, "clean_up_tokenization_spaces": True,
    }, indent=2))
    return len(vocab)


def build_unet(preset: str):
    """The preset's U-Net: SD 2.1's blocks (3 cross-attention down blocks, 3 transformer blocks per up block)."""
    from diffusers import UNet2DConditionModel

    spec = PRESETS[preset]
    return UNet2DConditionModel(
        sample_size=spec["resolution"] // 8, in_channels=4, out_channels=4, use_linear_projection=True,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, **spec["unet"])


def make_model(preset: str, out, seed: int = 0) -> Path:
    """Build the preset with seeded random weights and save it (atomically) in diffusers layout."""
    import shutil
    import tempfile

    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    spec = PRESETS[preset]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        vocab_size = write_clip_tokenizer(staging / "tokenizer")
        tokenizer = CLIPTokenizer.from_pretrained(staging / "tokenizer")
        text = spec["text"]
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=49408 if preset != "tiny" else vocab_size, max_position_embeddings=77, hidden_act="gelu",
            bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=1, **text))
        torch.manual_seed(seed + 1)
        unet = build_unet(preset)
        torch.manual_seed(seed + 2)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, sample_size=spec["resolution"],
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, **spec["vae"])
        scheduler = DDIMScheduler(
            num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            steps_offset=1, set_alpha_to_one=False, clip_sample=False, prediction_type=spec["prediction_type"],
            timestep_spacing="leading")
        pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        pipe.save_pretrained(staging, safe_serialization=True)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
