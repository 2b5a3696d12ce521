"""LPIPS: perceptual distance to the style's references, as jdiff_checker's lpips_api computes it.

The scorer resizes every image with PIL to 256 x 256 (torchvision Resize((256, 256)), bilinear with
antialiasing), scales it to [-1, 1] (ToTensor, then 2x - 1), keeps the first three channels, stacks
every generated x reference pair of a style and calls torchmetrics' LPIPS with net_type="squeeze"
(mean over the pairs). The style's value is that mean; overall, the mean over styles. (Per image,
not part of the scorer: the mean of its pairs, for per-prompt tables and choices.)
The resize is Pillow's in the file's own mode: an RGBA picture is resized with premultiplied
alpha (Pillow's rule), which changes its colours against resizing its RGB conversion, then its
alpha is dropped by `[:3]`. Grey and palette files give the scorer one channel and make it fail;
here they are converted to RGB first. Pillow 13 resizes RGB(A) to the bit as the scorer's Pillow 11
did (tests/test_evaluation.py recomputes Pillow 11's fixed-point bilinear in NumPy to keep it so).
Weights: torchvision's SqueezeNet 1.1 (ImageNet) from torch.hub's checkpoint folder, plus the LPIPS
linear layers shipped inside torchmetrics.
"""

from __future__ import annotations

import os

import numpy as np

from .metric import Metric
from .weights import fingerprint, torch_hub_checkpoint

NAME = "lpips"
SQUEEZENET_FILE = "squeezenet1_1-b8a52dc0.pth"  # torchvision SqueezeNet1_1_Weights.IMAGENET1K_V1


def lpips_input(path):
    """3 x 256 x 256 float in [-1, 1], the scorer's transform."""
    from PIL import Image
    from torchvision.transforms import functional as F

    image = Image.open(path)
    if image.mode != "RGBA":  # RGBA is resized as it is, like the scorer's (premultiplied alpha)
        image = image.convert("RGB")
    return (F.to_tensor(F.resize(image, [256, 256])) * 2 - 1)[:3]


class Lpips(Metric):
    name = NAME
    compares_references = True

    def __init__(self, hub_dir: str, batch_size: int = 8):
        self.weights = str(torch_hub_checkpoint(SQUEEZENET_FILE, hub_dir))
        self.fingerprint = fingerprint(self.weights)
        self.hub_dir, self.batch_size = hub_dir, batch_size
        self.references = (None, None)  # (files, features) of the last references compared with

    def load(self, device: str):
        self.device = device
        import torch
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

        if self.hub_dir:
            torch.hub.set_dir(self.hub_dir)
        self.metric = LearnedPerceptualImagePatchSimilarity(net_type="squeeze").to(self.device)

    def compute(self, images, references):
        """Each image's distances to the references, pair by pair, as torchmetrics' LPIPS network computes
        them (scaling, SqueezeNet, unit-normalised features, squared differences, its linear layers,
        spatial mean, sum over layers), with each image's features computed once, not once per pair."""
        import torch
        from torchmetrics.functional.image.lpips import _normalize_tensor, _spatial_average

        lpips = self.metric.net

        def features(paths):
            batch = torch.stack([lpips_input(p) for p in paths]).to(self.device)
            return [_normalize_tensor(out) for out in lpips.net.forward(lpips.scaling_layer(batch))]

        distances = []
        with torch.no_grad():
            key = tuple((str(p), os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in references)
            if self.references[0] != key:  # the store computes a style's pictures chunk by chunk
                self.references = (key, features(references))
            ref = self.references[1]
            for i in range(0, len(images), self.batch_size):
                gen = features(images[i:i + self.batch_size])
                for k in range(len(gen[0])):
                    layers = [_spatial_average(lin((g[k:k + 1] - r) ** 2), keep_dim=True)
                              for lin, g, r in zip(lpips.lins, gen, ref)]
                    distances.append(sum(layers).flatten().float().cpu().numpy())
        return distances

    def value(self, values, reference_values, images) -> dict:
        import torch

        distances = torch.from_numpy(np.stack(values))  # images x refs, float32 as torchmetrics holds them
        return {"value": distances.flatten().mean().item(), "per_image": distances.double().mean(dim=1).tolist()}
