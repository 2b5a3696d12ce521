"""The engine interface: what the stage loops need from a tensor library.

Stage code (styleid.py, generate.py, dreambooth.py) only calls these methods and the arithmetic
operators of the engine's tensors, so torch and jittor engines are interchangeable.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import InputError
from ..schedule import NoiseSchedule

# The spec's injected layers: self-attention of the last six decoder transformer blocks.
INJECTED_LAYERS = tuple(
    f"up_blocks.{block}.attentions.{i}.transformer_blocks.0.attn1" for block in (2, 3) for i in range(3)
)

Tensor = Any


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


class Engine(ABC):
    """One loaded model (U-Net, VAE, text encoder, tokenizer, noise schedule) on one device."""

    name: str
    schedule: NoiseSchedule
    scaling_factor: float
    vae_scale_factor: int
    fingerprint: str
    unet_config: dict
    injected_layers: Sequence[str] = INJECTED_LAYERS

    def check_resolution(self, resolution: int) -> None:
        multiple = 8 * self.vae_scale_factor  # the U-Net halves the latent three times
        if resolution < multiple or resolution % multiple:
            raise InputError("--resolution", f"{resolution} is not a positive multiple of {multiple}")

    @abstractmethod
    def tensor(self, array: np.ndarray) -> Tensor:
        """A host array as an engine tensor on the device, in the compute dtype."""

    @abstractmethod
    def numpy(self, tensor: Tensor) -> np.ndarray:
        """An engine tensor as a float32 host array."""

    @abstractmethod
    def cat(self, tensors: Sequence[Tensor]) -> Tensor:
        """Concatenate along the batch axis."""

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
