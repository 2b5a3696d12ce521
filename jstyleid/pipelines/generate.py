"""`jstyleid generate`: content images from prompts with DDIM and classifier-free guidance (a style's LoRA applied).

Equals diffusers' StableDiffusionPipeline with its DDIMScheduler given the same initial latents. The initial
noise of each image is drawn from a numpy Generator seeded by (seed, prompt), so any image can be
regenerated alone and equals its batched result.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.sampling import initial_noise, sample

log = logging.getLogger(__name__)


def generate_images(engine, prompts: Sequence[str], outs: Sequence, *, steps: int = 25, guidance: float = 7.5,
                    resolution: int = 512, template: str = "{prompt}", seed: int = 0, batch_size: int = 4,
                    negative_prompt: str = "", store=None, init=None, candidate: int = 0) -> None:
    """`store`: a result store folder (jstyleid/storage/store.py): finished images are taken from it, new ones added.
    `init(engine, rows, noise, taus)` -> (start latents, taus to sample) replaces the pure-noise start
    of prompts[rows] (jstyleid.core.img2img.Img2ImgStart); its `fields(i)` join image i's store key.
    `candidate` k > 0 draws the noise of candidate k (jstyleid.pipelines.candidates)."""
    from PIL import Image
    from tqdm.auto import tqdm

    from ..core.schedule import timesteps
    from ..storage.store import Results, batches, compute_identity, plan

    engine.check_resolution(resolution)
    taus = timesteps(steps)
    channels, side = engine.unet_config["in_channels"], resolution // engine.vae_scale_factor
    setting = dict(model=engine.fingerprint, compute=compute_identity(engine), loras=[_lora_digest(f) for f in engine.lora_files],
                   template=template, negative_prompt=negative_prompt, steps=steps, guidance=guidance,
                   resolution=resolution, seed=seed)
    if candidate:
        setting["candidate"] = candidate
    fields = [dict(setting, prompt=p, **(init.fields(i) if init else {})) for i, p in enumerate(prompts)]
    results = Results(store, "generate", fields, outs, ".png")
    for batch in tqdm(batches(plan("generate", results), batch_size), desc="generate", leave=False):
        noise = np.stack([initial_noise(seed, prompts[i], (channels, side, side), candidate) for i in batch])
        texts = [template.replace("{prompt}", prompts[i]) for i in batch]
        x, run_taus = init(engine, batch, noise, taus) if init else (noise, taus)
        latents = sample(engine, texts, x, run_taus, guidance=guidance, negative_prompt=negative_prompt)
        for image, i in zip(engine.decode(latents), batch):
            with results.writing(i) as tmp:
                Image.fromarray(image).save(tmp, format="PNG")
        log.info("generated %s", ", ".join(str(outs[i]) for i in batch))


def _lora_digest(lora) -> str:
    """sha256 of a LoRA weights file (a folder means its pytorch_lora_weights.safetensors)."""
    from ..training.lora import LORA_FILE
    from ..storage.inputs import sha256_file

    path = Path(lora)
    return sha256_file(path / LORA_FILE if path.is_dir() else path)
