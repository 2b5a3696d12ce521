"""The sampling of the spec's generation: seeded initial noise and the guided DDIM loop (eta = 0).

Equals diffusers' StableDiffusionPipeline with its DDIMScheduler given the same initial latents. The initial
noise of each image is drawn from a numpy Generator seeded by (seed, prompt), so any image can be
regenerated alone and equals its batched result.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np


def initial_noise(seed: int, prompt: str, shape: Sequence[int], candidate: int = 0) -> np.ndarray:
    """Standard normal noise that depends only on (seed, prompt, candidate): not on the batch or the template."""
    text = f"{seed}\0{prompt}" + (f"\0{candidate}" if candidate else "")  # candidate 0: the single-candidate noise
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little")).standard_normal(shape, dtype=np.float32)


def sample(engine, texts: Sequence[str], noise: np.ndarray, taus: Sequence[int], *, guidance: float = 7.5,
           negative_prompt: str = ""):
    """DDIM (eta = 0) from `noise` (B, 4, h, w) over taus descending; returns the final latent (engine tensor).

    Guidance: out = u + g (c - u), with u and c from one U-Net call on the doubled batch [uncond, cond].
    """
    n = len(texts)
    guided = guidance > 1  # as diffusers: guidance_scale <= 1 means no unconditional pass
    cond = engine.text(list(texts))
    if guided:
        cond = engine.cat([engine.text([negative_prompt] * n), cond])
    x = engine.tensor(noise)
    for i in range(len(taus) - 1, -1, -1):
        out, _ = engine.unet(engine.cat([x, x]) if guided else x, taus[i], cond)
        if guided:
            out = out[:n] + guidance * (out[n:] - out[:n])
        x = engine.schedule.move(out, x, taus[i], taus[i - 1] if i > 0 else -1)
    return x
