"""The engine interface: what the stage loops need from a tensor library.

Stage code (styleid.py, generate.py, dreambooth.py) only calls these methods and the arithmetic
operators of the engine's tensors, so torch and jittor engines are interchangeable.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..core.schedule import NoiseSchedule

# The spec's injected layers: self-attention of the last six decoder transformer blocks.
INJECTED_LAYERS = tuple(
    f"up_blocks.{block}.attentions.{i}.transformer_blocks.0.attn1" for block in (2, 3) for i in range(3)
)

Tensor = Any
# train-lora's output inside its folder (diffusers' name); both engines' loaders accept the folder.
LORA_FILE = "pytorch_lora_weights.safetensors"
TEXT_ENCODER_PREFIX = "text_encoder."  # the keys of a LoRA file's text-encoder part (the U-Net's: "unet.")


def lora_file(path) -> Path:
    """The LoRA file a --lora argument names: the file itself, or LORA_FILE inside a folder."""
    path = Path(path)
    file = path / LORA_FILE if path.is_dir() else path
    if not file.is_file():
        raise InputError(file, "LoRA file not found")
    return file


@dataclass
class Injection:
    """What the injected attention layers do during one U-Net call (spec, "Injection").

    The first `rows` batch rows are the latents being stylized. With `features` (stored mode) each
    injected layer takes q_content (rows, tok, C), k_style and v_style (1, R*tok, C) from it. Without
    (recompute mode) the batch goes on with `rows` content latents and then R style latents at the same
    timestep, evaluated normally, and their own q / k, v are used: the numbers a cache would hold.
    """

    rows: int
    gamma: float
    temperature: float
    features: dict[str, tuple[Tensor, Tensor, Tensor]] | None = None


class CallState:
    """What the StyleID processors read during the current U-Net call."""

    def __init__(self):
        self.record: Sequence[str] = ()
        self.inject: Injection | None = None
        self.recorded: dict[str, dict[str, Tensor]] = {}

    @contextlib.contextmanager
    def active(self, record: Sequence[str], inject: Injection | None):
        """Set what the processors do for one U-Net call; yields the dict they record into."""
        self.record, self.inject, self.recorded = tuple(record), inject, {}
        try:
            yield self.recorded
        finally:
            self.record, self.inject, self.recorded = (), None, {}


class StyleIDAttnProcessor:
    """Self-attention of an injected layer (both engines): records q/k/v and applies the spec's injection.

    Installed like a diffusers attention processor; `engine` supplies attention(), cat() and expand_batch().
    """

    def __init__(self, name: str, state: CallState, engine: "Engine"):
        self.name, self.state, self.engine = name, state, engine

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, *args, **kwargs):
        h, state, ops = hidden_states, self.state, self.engine
        q, k, v = attn.to_q(h), attn.to_k(h), attn.to_v(h)
        if state.record:
            state.recorded[self.name] = {n: t for n, t in zip("qkv", (q, k, v)) if n in state.record}
        inj, upcast = state.inject, attn.upcast_attention
        if inj is None:
            out = ops.attention(q, k, v, attn.heads, attn.scale, upcast)
        else:
            n = inj.rows
            if inj.features is not None:
                q_content, k_style, v_style = inj.features[self.name]
            else:  # recompute: rows n..2n-1 are the contents, 2n.. the style references
                q_content = q[n:2 * n]
                k_style = k[2 * n:].reshape((1, -1, k.shape[-1]))
                v_style = v[2 * n:].reshape((1, -1, v.shape[-1]))
            # q~ = gamma * q_content + (1 - gamma) * q;  attention = softmax(T q~ k^T / sqrt(d)) v
            q_tilde = inj.gamma * q_content + (1 - inj.gamma) * q[:n]
            stylized = ops.attention(q_tilde, ops.expand_batch(k_style, n), ops.expand_batch(v_style, n),
                                     attn.heads, inj.temperature * attn.scale, upcast)
            if h.shape[0] > n:  # the rows that only provide features attend as usual
                out = ops.cat([stylized, ops.attention(q[n:], k[n:], v[n:], attn.heads, attn.scale, upcast)])
            else:
                out = stylized
        out = attn.to_out[0](out)  # to_out[1] is a dropout (p = 0 in SD 2.x)
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


class Engine(ABC):
    """One loaded model (U-Net, VAE, text encoder, tokenizer, noise schedule) on one device."""

    name: str
    schedule: NoiseSchedule
    scaling_factor: float
    vae_scale_factor: int
    fingerprint: str
    unet_config: dict
    injected_layers: Sequence[str] = INJECTED_LAYERS
    lora_files: tuple = ()  # the LoRAs load_lora applied, in order (their hashes key generated images)

    def check_resolution(self, resolution: int) -> None:
        multiple = 8 * self.vae_scale_factor  # the U-Net halves the latent three times
        if resolution < multiple or resolution % multiple:
            raise InputError("--resolution", f"{resolution} is not a positive multiple of {multiple}")

    @abstractmethod
    def tensor(self, array: np.ndarray) -> Tensor:
        """A host array as an engine tensor on the device, in the compute dtype."""

    @abstractmethod
    def numpy(self, tensor: Tensor, dtype: str = "float32") -> np.ndarray:
        """An engine tensor as a host array of `dtype` (cast before the copy: float16 moves half the bytes)."""

    @abstractmethod
    def cat(self, tensors: Sequence[Tensor]) -> Tensor:
        """Concatenate along the batch axis."""

    @abstractmethod
    def expand_batch(self, tensor: Tensor, n: int) -> Tensor:
        """(1, ...) -> (n, ...) without copying."""

    @staticmethod
    @abstractmethod
    def attention(q, k, v, heads: int, scale: float, upcast: bool) -> Tensor:
        """softmax(scale * q k^T) v per head on (B, tokens, inner_dim); scores and softmax in fp32 if upcast."""

    @abstractmethod
    def encode(self, images: np.ndarray) -> Tensor:
        """(B, 3, H, W) in [-1, 1] -> z = vae.encode(x).latent_dist.mean * scaling_factor."""

    @abstractmethod
    def decode(self, latents: Tensor) -> np.ndarray:
        """z -> uint8 (B, H, W, 3): vae.decode(z / scaling_factor), clamped, round((y + 1) * 127.5)."""

    @abstractmethod
    def text(self, prompts: Sequence[str]) -> Tensor:
        """Last hidden state of the text encoder for padded, truncated prompts, no attention mask."""

    @abstractmethod
    def unet(self, x: Tensor, t: int, cond: Tensor, record: Sequence[str] = (),
             inject: Injection | None = None) -> tuple[Tensor, dict[str, dict[str, Tensor]]]:
        """U-Net output at timestep t; cond of batch 1 is broadcast.

        `record` names which of "q", "k", "v" to return from every injected layer:
        {layer: {name: (B, tokens, inner_dim)}}.
        """

    @abstractmethod
    def lora_trainer(self, **settings):
        """A LoRA trainer for the U-Net (see dreambooth.py for what it must offer)."""
