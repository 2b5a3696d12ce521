"""`jstyleid stylize`: content images x style images -> one stylized PNG per pair, in one go.

The stages' own code, without cache files: invert's batches into cache.MemoryCache (latents only),
then inject's, recomputing the features (as `inject --features recompute` does from
`invert --features recompute` caches). Each style image is a style of its own: {content}__{style}.png.
"""

from __future__ import annotations

import logging
from pathlib import Path


log = logging.getLogger(__name__)


def pair_name(content, style) -> str:
    return f"{Path(content).stem}__{Path(style).stem}"


def stylize_pairs(engine, contents, styles, out_dir, latent_dir=None, *, steps, resolution, gamma, temperature,
                  use_adain, batch_size, grid=False):
    from tqdm.auto import tqdm

    from ..storage.cache import MemoryCache
    from .inject import inject_images
    from .invert import invert_images

    def invert(images, role):
        return invert_images(engine, images, images, role=role, steps=steps, resolution=resolution,
                             features=False, batch_size=batch_size, writer=MemoryCache)

    content_caches, style_caches = invert(contents, "content"), invert(styles, "style")
    for style, style_cache in zip(tqdm(styles, desc="stylize", unit="style"), style_caches):
        names = [pair_name(content, style) for content in contents]
        inject_images(engine, content_caches, [style_cache], [Path(out_dir) / f"{n}.png" for n in names],
                [Path(latent_dir) / f"{n}.npy" for n in names] if latent_dir else None,
                gamma=gamma, temperature=temperature, use_adain=use_adain, mode="recompute",
                batch_size=batch_size)
    if grid:
        write_grid(contents, styles, out_dir, resolution)


def write_grid(contents, styles, out_dir, side):
    """out_dir/grid.png: the contents down, the styles across (as the model saw them), the outputs."""
    import numpy as np
    from PIL import Image

    from ..storage.inputs import load_rgb, preprocess
    from ..reporting.plots import labelled_grid

    def seen(path):  # the centre-cropped, resized input, back from [-1, 1]
        pixels = (preprocess(path, side).transpose(1, 2, 0) + 1.0) * 127.5
        return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))

    cells = [[load_rgb(Path(out_dir) / f"{pair_name(c, s)}.png") for s in styles] for c in contents]
    labelled_grid([(Path(s).stem, seen(s)) for s in styles], [(Path(c).stem, seen(c)) for c in contents],
                  cells, Path(out_dir) / "grid.png", side)
    log.info("grid of %d x %d -> %s", len(contents), len(styles), Path(out_dir) / "grid.png")
