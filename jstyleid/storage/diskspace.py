"""Room on disk for inversion caches (docs/cache-format.md), estimated before they are written.

A stored-mode cache holds, per step, the latent and the injected layers' features: content caches
q, style caches k and v, each (tokens, inner_dim) in float16. For SD 2.1 at 512 px with 50 steps
that is about 562 MiB per content image and twice that per style image.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from ..errors import InputError

ROLE_ARRAYS = {"content": 1, "style": 2}  # q; k and v
# HDF5's own bytes, measured on h5py 3 files: the superblock and root group, a group per layer,
# and per dataset its header and chunk index.
FILE_OVERHEAD = 4784
GROUP_OVERHEAD = 1000
DATASET_OVERHEAD = 3408
_BLOCK = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.|^mid_block\.")


def layer_shape(layer: str, unet_config: dict, latent_side: int) -> tuple[int, int]:
    """(tokens, inner_dim) of a self-attention layer's q / k / v at a latent side."""
    channels = list(unet_config["block_out_channels"])
    match = _BLOCK.match(layer)
    if not match:
        raise InputError("--layers", f"{layer}: not a down_blocks, mid_block or up_blocks attention layer")
    if match.group(1) == "down_blocks":
        block = int(match.group(2))
        width, halvings = channels[block], block
    elif match.group(1) == "up_blocks":
        block = int(match.group(2))
        width, halvings = channels[::-1][block], len(channels) - 1 - block
    else:
        width, halvings = channels[-1], len(channels) - 1
    side = latent_side >> halvings
    return side * side, width


def cache_bytes(*, role: str, steps: int, resolution: int, unet_config: dict, vae_scale_factor: int,
                layers, features: bool = True, feature_itemsize: int = 2) -> int:
    """Bytes of one image's cache file."""
    side = resolution // vae_scale_factor
    size = FILE_OVERHEAD + DATASET_OVERHEAD + steps * unet_config.get("in_channels", 4) * side * side * 4
    if features:
        for layer in layers:
            tokens, width = layer_shape(layer, unet_config, side)
            size += GROUP_OVERHEAD + ROLE_ARRAYS[role] * (DATASET_OVERHEAD + steps * tokens * width * feature_itemsize)
    return size


def model_shapes(spec: str):
    """(unet config, VAE scale factor) of a model spec without loading weights; None if unknown yet."""
    from ..engines.models import BUILTIN_PREFIX, read_config, resolve_model

    if spec.startswith(BUILTIN_PREFIX):
        from ..engines.presets import PRESETS

        preset = PRESETS.get(spec[len(BUILTIN_PREFIX):])
        if preset is None:
            return None
        unet, vae = dict(preset["unet"], in_channels=4), preset["vae"]
    else:
        try:
            folder = resolve_model(spec)
            unet, vae = read_config(folder, "unet"), read_config(folder, "vae")
        except InputError:
            return None  # the first model job names the problem
    return unet, 2 ** (len(vae["block_out_channels"]) - 1)


def planned_cache_bytes(model: str, plans, *, features: str = "stored") -> int:
    """Bytes the caches still to be written need: plans are (role, steps, resolution, layers, files),
    layers those whose features the caches record."""
    shapes = model_shapes(model)
    if shapes is None:
        return 0
    unet, scale = shapes
    return sum(len(files) * cache_bytes(role=role, steps=steps, resolution=resolution, unet_config=unet,
                                        vae_scale_factor=scale, layers=layers, features=features == "stored")
               for role, steps, resolution, layers, files in plans)


def check_room(needed: int, folder) -> None:
    """Refuse to start when the file system of `folder` has fewer than `needed` bytes free."""
    where = Path(folder).resolve()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if needed > free:
        raise InputError(folder, f"the planned inversion caches need {_gib(needed)} but the file system has "
                                 f"{_gib(free)} free; set `features: recompute` (caches of a few KiB per "
                                 f"image, features recomputed at injection) or free space")


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.1f} MiB"
