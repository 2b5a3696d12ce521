"""`jstyleid class-images`: DreamBooth's class images for prior preservation, drawn with the base model.

Image i starts from noise seeded by (seed, "<class prompt> #i") (core.sampling.initial_noise), so the set
is repeatable and a larger count only adds images. Written to out-dir/images/0000.png ..., the
layout of a style folder, which `train-lora --class-dir` reads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np


log = logging.getLogger(__name__)


def class_images(engine, prompt: str, count: int, out_dir, *, steps: int = 25, guidance: float = 7.5,
                 resolution: int = 512, seed: int = 0, batch_size: int = 4) -> list[Path]:
    from PIL import Image
    from tqdm.auto import tqdm

    from ..storage.fileio import atomic_path
    from ..core.sampling import initial_noise, sample
    from ..core.schedule import timesteps

    engine.check_resolution(resolution)
    taus = timesteps(steps)
    channels, side = engine.unet_config["in_channels"], resolution // engine.vae_scale_factor
    outs = [Path(out_dir) / "images" / f"{i:04d}.png" for i in range(count)]
    for start in tqdm(range(0, count, batch_size), desc=f"class images {prompt}", leave=False):
        batch = range(start, min(start + batch_size, count))
        noise = np.stack([initial_noise(seed, f"{prompt} #{i}", (channels, side, side)) for i in batch])
        latents = sample(engine, [prompt] * len(batch), noise, taus, guidance=guidance)
        for i, image in zip(batch, engine.decode(latents)):
            with atomic_path(outs[i]) as tmp:
                Image.fromarray(image).save(tmp, format="PNG")
    log.info("wrote %d class images of %r to %s", count, prompt, out_dir)
    return outs
