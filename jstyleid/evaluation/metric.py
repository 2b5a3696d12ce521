"""What every part of jstyleid.evaluation offers: a value per image, then a style's value from those.

A part's network turns each image into a value (`compute`): a feature (DINO, FID, CLIP-R), a score
of its own (CLIP-IQA), or scores against the style's references (Hist, LPIPS: `compares_references`,
so the references' hashes belong to the value's key). A style's number is arithmetic on those values
(`value`), so values kept in the per-image store (evaluation/stored.py) give the numbers pixels give,
and only images not seen before need a network.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


class Metric:
    name: str
    weights: str  # what the report names as the weights
    fingerprint: str = ""  # of the weights' files (weights.fingerprint): a changed file is another network
    compares_references = False  # an image's value depends on the style's references
    reference_values = False  # value() needs the references' own values (features to compare with)

    def load(self, device: str) -> None:
        """Load the network onto `device` (only when some value has to be computed)."""

    def compute(self, images: Sequence, references: Sequence) -> list[np.ndarray]:
        """The value of each image (references: the style's, for the parts that compare against them)."""
        raise NotImplementedError

    def value(self, values: Sequence[np.ndarray], reference_values, images: Sequence) -> dict:
        """{"value", ...} of one style's images from their values (and the references' where needed)."""
        raise NotImplementedError

    def style(self, generated: Sequence, references: Sequence = ()) -> dict:
        """One style's result straight from pixels, nothing stored (the network must be loaded)."""
        generated, references = list(generated), list(references)
        refs = self.compute(references, ()) if self.reference_values else None
        return self.value(self.compute(generated, references), refs, generated)


def pooled_outputs(images: Sequence, processor, forward, batch_size: int, device) -> list[np.ndarray]:
    """`forward(**processor(images)).pooler_output` of each image (opened as RGB), in batches, float32:
    the features DINO and CLIP-R compare."""
    import torch
    from PIL import Image

    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            batch = [Image.open(p).convert("RGB") for p in images[i:i + batch_size]]
            inputs = processor(images=batch, return_tensors="pt").to(device)
            out += list(forward(**inputs).pooler_output.float().cpu().numpy())
    return out
