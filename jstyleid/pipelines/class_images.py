"""`jstyleid class-images`: DreamBooth's class images for prior preservation, drawn with the base model.

Image i starts from noise seeded by (seed, "<class prompt> #i") (generate.initial_noise), so the set
is repeatable and a larger count only adds images. Written to out-dir/images/0000.png ..., the
layout of a style folder, which `train-lora --class-dir` reads.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import InputError

COMMAND = "class-images"
HELP = "generate DreamBooth class images (prior preservation) with the base model into out-dir/images/"
log = logging.getLogger(__name__)


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser)
    parser.add_argument("--prompt", required=True, help="the class prompt, e.g. 'a painting'")
    parser.add_argument("--count", type=int, default=100, help="number of class images")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=4)


def run(args):
    from ..engines import load_engine

    for option in ("count", "steps", "batch_size"):
        if getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')}", "must be at least 1")
    if not args.prompt.strip():
        raise InputError("--prompt", "the class prompt is empty")
    engine = load_engine(args.engine, args.model, args.device, args.dtype)
    class_images(engine, args.prompt, args.count, args.out_dir, steps=args.steps, guidance=args.guidance,
                 resolution=args.resolution, seed=args.seed, batch_size=args.batch_size)


def class_images(engine, prompt: str, count: int, out_dir, *, steps: int = 25, guidance: float = 7.5,
                 resolution: int = 512, seed: int = 0, batch_size: int = 4) -> list[Path]:
    from PIL import Image
    from tqdm.auto import tqdm

    from ..storage.fileio import atomic_path
    from .generate import initial_noise, sample
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
