"""FID: Frechet Inception Distance to the references, as jdiff_checker's fid_api computes it.

The scorer pools the generated images of all styles and the references of all styles and computes
one torchmetrics `FrechetInceptionDistance(feature=64)` (torch-fidelity's InceptionV3, the 64-channel
features of its first pooling block) between them. Images are opened with PIL and turned into uint8
by `ToTensor()` then `(x * 255).byte()` (float32 v / 255 * 255, truncated), done the same way here:
it gives every uint8 v back unchanged, so the truncation never bites. Per style (not part of the
scorer; used for per-style tables and selection) FID is computed on that style's images alone; the
overall value pools the per-style feature sums exactly as one metric over all images would.

Resizing to 299 x 299: the scorer's torchmetrics 1.2 always resized with torch-fidelity's
TensorFlow-1-style bilinear (`interpolate_bilinear_2d_like_tensorflow1x`, no antialiasing);
torchmetrics 1.9 antialiases by default, which moved FID by ~2 %, so the metric is built with
`antialias=False`. The rest is the same arithmetic in both versions: float64 feature sums and
covariances, and the trace of the matrix square root through `torch.linalg.eigvals(sigma1 @ sigma2)`.
The scorer stacks a whole set, so it needs images of one size with 3 channels (RGB); grey,
palette and RGBA files make it fail, and here they are converted to RGB (alpha dropped).
"""

from __future__ import annotations

from typing import Sequence

from .weights import torch_hub_checkpoint

NAME = "fid"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's URL_INCEPTION_V3


def fid_input(path):
    """3 x H x W uint8, the scorer's transform (with its truncation)."""
    import torch
    from PIL import Image
    from torchvision.transforms import functional as F

    return (F.to_tensor(Image.open(path).convert("RGB")) * 255).to(torch.uint8)


class Fid:
    name = NAME

    def __init__(self, hub_dir: str):
        self.weights = str(torch_hub_checkpoint(INCEPTION_FILE, hub_dir))

    def load(self, device: str):
        self.device = device
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.metric = FrechetInceptionDistance(feature=64, feature_extractor_weights_path=self.weights,
                                                antialias=False).to(self.device)

    def _add(self, paths, real):
        import torch

        with torch.no_grad():
            for path in paths:  # one at a time: images of a style may differ in size
                self.metric.update(fid_input(path)[None].to(self.device), real=real)

    def style(self, generated: Sequence, references: Sequence, **_) -> dict:
        self.metric.reset()
        self._add(references, real=True)
        self._add(generated, real=False)
        state = {name: value.clone() for name, value in self.metric.metric_state.items()}
        # FID needs two images on each side; a style with one reference has no FID of its own
        value = self.metric.compute().item() if min(len(generated), len(references)) >= 2 else None
        return {"value": value, "state": state}

    def overall(self, styles: Sequence[dict]) -> float:
        self.metric.reset()
        for style in styles:
            self.metric.merge_state(style["state"])
        return self.metric.compute().item()
