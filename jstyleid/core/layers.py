"""Which self-attention layers StyleID injects: module paths, the StyleID authors' numbering, presets.

The authors number the decoder's twelve layers 0-11 (`output_blocks` in the original code). Their
diffusers implementation (jiwoogit/StyleID, diffusers_implementation/stable_diffusion.py,
get_unet_layers) maps layer n to up_blocks[n // 3].attentions[n % 3] and injects into its
transformer_blocks[0].attn1; up_blocks.0 has no attention, so layers 0-2 have none.
"""

from __future__ import annotations

import hashlib
import re
from typing import Sequence

from ..engines.base import INJECTED_LAYERS
from ..errors import InputError

_DECODER_ATTENTION = re.compile(r"up_blocks\.(\d+)\.attentions\.([0-2])\.transformer_blocks\.0\.attn1")


def decoder_layer(n: int) -> str:
    """The attn1 module path of the authors' decoder layer n (3..11)."""
    if not 3 <= n <= 11:
        raise ValueError(f"decoder layer {n}: only layers 3..11 have attention")
    return f"up_blocks.{n // 3}.attentions.{n % 3}.transformer_blocks.0.attn1"


PRESETS = {
    "spec6": INJECTED_LAYERS,  # the spec's six: decoder layers 6-11
    "sd21_7to11": tuple(decoder_layer(n) for n in range(7, 12)),  # the authors' advice for SD 2.1
}


def resolve_layers(names: str | Sequence[str]) -> tuple[str, ...]:
    """Module paths of a preset name, or of a list whose items are module paths or preset names."""
    items = [names] if isinstance(names, str) else list(names)
    if not items:
        raise InputError("--layers", "no layers given")
    layers = []
    for item in items:
        for layer in PRESETS.get(item, (item,)):
            if layer not in layers:
                layers.append(layer)
    return tuple(layers)


def layers_label(names: str | Sequence[str]) -> str:
    """A short folder-name label: the preset's name, L<n>-<n>... in the authors' numbering, or a digest."""
    if isinstance(names, str) and names in PRESETS:
        return names
    layers = resolve_layers(names)
    preset = next((name for name, members in PRESETS.items() if members == layers), None)
    if preset:
        return preset
    matches = [_DECODER_ATTENTION.fullmatch(layer) for layer in layers]
    if all(matches):
        return "L" + "-".join(str(3 * int(m[1]) + int(m[2])) for m in matches)
    return "L" + hashlib.sha256("\n".join(layers).encode()).hexdigest()[:8]
