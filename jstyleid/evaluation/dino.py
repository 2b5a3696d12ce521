"""DINO: style similarity by DINOv2 features, as jdiff_checker's dino_api computes it.

The scorer runs `facebook/dinov2-base` (transformers AutoModel and its AutoImageProcessor) on each
image opened with PIL, takes `pooler_output` (the layer-normed CLS token) and the cosine similarity
of every generated x reference pair of a style; the mean over references, then over the generated
images gives the style's value, and the mean over styles the overall one. Here each image's feature
is computed once (in batches) rather than once per pair: the same numbers up to float rounding.

The scorer's transformers 4.47 preprocessed with PIL (convert to RGB, bicubic resize, crop,
rescale, normalise in NumPy); transformers 5's default torchvision processors resize differently,
so the PIL processor is asked for (`backend="pil"`): the same pixel values as 4.47's to the bit.
Images are converted to RGB first as 4.47 did (alpha dropped; transformers 5 composites on white).
"""

from __future__ import annotations

import numpy as np

from .metric import Metric, pooled_outputs
from .weights import fingerprint, hugging_face

NAME = "dino"


class Dino(Metric):
    name = NAME
    reference_values = True

    def __init__(self, spec: str, batch_size: int = 8):
        self.weights = spec
        self.folder = hugging_face(spec)
        self.fingerprint = fingerprint(self.folder)
        self.batch_size = batch_size

    def load(self, device: str):
        self.device = device
        from transformers import AutoImageProcessor, AutoModel

        self.processor = AutoImageProcessor.from_pretrained(self.folder, local_files_only=True, backend="pil")
        self.model = AutoModel.from_pretrained(self.folder, local_files_only=True).to(self.device).eval()

    def compute(self, images, references=()):
        """Each image's pooler_output."""
        return pooled_outputs(images, self.processor, self.model, self.batch_size, self.device)

    def value(self, values, reference_values, images) -> dict:
        import torch

        gen, ref = torch.from_numpy(np.stack(values)), torch.from_numpy(np.stack(reference_values))
        cosine = torch.nn.functional.cosine_similarity(gen[:, None], ref[None], dim=-1)  # images x refs
        per_image = cosine.double().mean(dim=1)
        return {"value": per_image.mean().item(), "per_image": per_image.tolist()}
