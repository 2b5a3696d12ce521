"""Img2img starts of content generation: the DDIM start is an init image's latent noised to the strength's
timestep, as diffusers' StableDiffusionImg2ImgPipeline does it (get_timesteps, prepare_latents with
scheduler.add_noise), and sampling runs only the timesteps below it.

One difference, on purpose: the init latent is the VAE posterior's mean (the engine's encode, as for
inversion) where the pipeline draws a sample from the posterior, so a start depends only on
(seed, prompt) like the noise of generate.py. Given those latents and the same noise the two agree
(tests/test_img2img.py).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from ..errors import InputError
from .schedule import img2img_timesteps


def mean_image(paths: Sequence, resolution: int) -> np.ndarray:
    """Per-pixel mean of the images, each preprocessed as for inversion: (3, res, res) in [-1, 1]."""
    from ..storage.inputs import preprocess

    return np.mean([preprocess(path, resolution) for path in paths], axis=0, dtype=np.float64).astype(np.float32)


class Img2ImgStart:
    """Starts for generate_images: prompt i starts from init image i (or the one image every prompt shares)."""

    def __init__(self, pixels: Sequence[np.ndarray], strength: float, n_prompts: int):
        if len(pixels) not in (1, n_prompts):
            raise InputError("--init-image", f"{len(pixels)} init images for {n_prompts} prompts (give 1 or one each)")
        self.pixels, self.strength = list(pixels), strength

    def fields(self, i: int) -> dict:
        """What prompt i's start adds to its result-store key: the init pixels' digest and the strength."""
        pixels = self.pixels[i if len(self.pixels) > 1 else 0]
        return dict(init_sha256=hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest(),
                    strength=self.strength)

    def __call__(self, engine, rows: Sequence[int], noise: np.ndarray, taus: Sequence[int]):
        """(start latents, ascending taus to sample) for the prompts `rows` given their noise."""
        kept = img2img_timesteps(list(taus), self.strength)
        pixels = np.stack([self.pixels[i if len(self.pixels) > 1 else 0] for i in rows])
        z = engine.numpy(engine.encode(pixels))
        return engine.schedule.add_noise(z, noise, kept[-1]), kept
