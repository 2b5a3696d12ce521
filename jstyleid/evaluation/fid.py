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

from .metric import Metric
from .weights import fingerprint, torch_hub_checkpoint

NAME = "fid"
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's URL_INCEPTION_V3
FEATURES = 64  # the scorer's FrechetInceptionDistance(feature=64)


def fid_input(path):
    """3 x H x W uint8, the scorer's transform (with its truncation)."""
    import torch
    from PIL import Image
    from torchvision.transforms import functional as F

    return (F.to_tensor(Image.open(path).convert("RGB")) * 255).to(torch.uint8)


def feature_sums():
    """A FrechetInceptionDistance over features already made: its network passes them through, so
    torchmetrics keeps its own sums, covariances and arithmetic."""
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):
        num_features = FEATURES

        def forward(self, features):
            return features

    return FrechetInceptionDistance(feature=Features())


class Fid(Metric):
    name = NAME
    reference_values = True

    def __init__(self, hub_dir: str):
        self.weights = str(torch_hub_checkpoint(INCEPTION_FILE, hub_dir))
        self.fingerprint = fingerprint(self.weights)
        self.sums = None

    def load(self, device: str):
        self.device = device
        from torchmetrics.image.fid import NoTrainInceptionV3

        # the network FrechetInceptionDistance(feature=64, antialias=False) builds, without its sums
        self.inception = NoTrainInceptionV3(name="inception-v3-compat", features_list=[str(FEATURES)],
                                            feature_extractor_weights_path=self.weights, antialias=False).to(device)

    def compute(self, images, references=()):
        """Each image's 64 pool features (one at a time: images of a style may differ in size)."""
        import torch

        with torch.no_grad():
            return [self.inception(fid_input(p)[None].to(self.device))[0].cpu().numpy() for p in images]

    def _metric(self):
        if self.sums is None:
            self.sums = feature_sums()
        self.sums.reset()
        return self.sums

    def value(self, values, reference_values, images) -> dict:
        import torch

        metric = self._metric()
        for features, real in [(f, True) for f in reference_values] + [(f, False) for f in values]:
            metric.update(torch.from_numpy(features)[None], real=real)  # one at a time, as images were added
        state = {name: value.clone() for name, value in metric.metric_state.items()}
        # FID needs two images on each side; a style with one reference has no FID of its own
        value = metric.compute().item() if min(len(values), len(reference_values)) >= 2 else None
        return {"value": value, "state": state}

    def overall(self, styles: Sequence[dict]) -> float:
        metric = self._metric()
        for style in styles:
            metric.merge_state(style["state"])
        return metric.compute().item()
