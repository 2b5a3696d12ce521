"""CLIP-IQA: "Good photo." vs "Bad photo.", as jdiff_checker's clip_iqa_api computes it.

The scorer calls torchmetrics' `CLIPImageQualityAssessment(prompts=("quality",))` with its default
model "clip_iqa" (piq's CLIP ResNet-50 without positional embedding, ~/.cache/clip/RN50.pt as
weights.piq_clip_checkpoint finds it, and the tokenizer of openai/clip-vit-base-patch16 from the Hugging
Face cache) on each style's images, and takes the mean per style,
then over styles. It feeds the images as `ToTensor()(img) * 255`, floats in 0..255, with the metric's
default data_range=1.0: torchmetrics divides by data_range, so piq's network sees pixels 255 times too
bright (then CLIP-normalised). Two scalings, chosen by `scaling`:

- "correct" (default): the network sees the pixels as it was trained to. For "clip_iqa" the images
  are fed in [0, 1]; for a transformers CLIP model (any folder or cached hub id given instead of
  "clip_iqa") they are fed in 0..255, because its CLIPProcessor rescales by 1/255 itself.
- "challenge": 0..255 floats with data_range=1.0 whatever the model, the scorer's numbers (for a
  transformers CLIP model the two scalings coincide). Grey and palette files are fed as the scorer's
  ToTensor reads them (with "clip_iqa", the scorer's model), one channel that the CLIP
  normalisation broadcasts to three: for palette files that channel holds the palette indices,
  not colours. ("correct" converts them to RGB.)

Every other file is converted to RGB (alpha dropped); the scorer fails on RGBA (4 channels).
"""

from __future__ import annotations

import os
from .metric import Metric
from .weights import fingerprint, hugging_face, piq_clip_checkpoint

NAME = "clip_iqa"
PIQ_MODEL = "clip_iqa"
PIQ_TOKENIZER = "openai/clip-vit-base-patch16"  # what torchmetrics loads the tokenizer from
SCALINGS = ("correct", "challenge")
ONE_CHANNEL = ("L", "P")  # modes the scorer feeds as one channel (for "P": the palette indices)


def pixel_scale(spec: str, scaling: str) -> float:
    """What the [0, 1] image tensor is multiplied by before the metric (data_range stays 1.0)."""
    return 1.0 if scaling == "correct" and spec == PIQ_MODEL else 255.0


class ClipIqa(Metric):
    name = NAME

    def __init__(self, spec: str, scaling: str = "correct"):
        if scaling not in SCALINGS:
            raise ValueError(f"CLIP-IQA scaling must be one of {SCALINGS}, not {scaling!r}")
        self.spec, self.scale = spec, pixel_scale(spec, scaling)
        self.one_channel = scaling == "challenge" and spec == PIQ_MODEL  # the scorer's reading of L and P
        if spec == PIQ_MODEL:
            weights = piq_clip_checkpoint()
            self.fingerprint = fingerprint(weights) + fingerprint(hugging_face(PIQ_TOKENIZER))
            self.weights = f"{weights} + {PIQ_TOKENIZER} tokenizer"
        else:
            self.folder = hugging_face(spec)
            self.fingerprint = fingerprint(self.folder)
            self.weights = spec
        self.weights += f" (scaling: {scaling})"

    def _local_clip(self):
        from transformers import CLIPModel, CLIPProcessor

        model = CLIPModel.from_pretrained(self.folder, local_files_only=True)
        for name in ("get_text_features", "get_image_features"):
            setattr(model, name, _projected_tensor(getattr(model, name)))
        return model, CLIPProcessor.from_pretrained(self.folder, local_files_only=True, backend="pil")

    def load(self, device: str):
        self.device = device
        from torchmetrics.multimodal import CLIPImageQualityAssessment

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        model = PIQ_MODEL if self.spec == PIQ_MODEL else self._local_clip
        self.metric = CLIPImageQualityAssessment(model_name_or_path=model, prompts=("quality",)).to(self.device)

    def compute(self, images, references=()):
        """Each image's probability of "Good photo." (one at a time: images of a style may differ in size)."""
        import torch
        from PIL import Image
        from torchvision.transforms import functional as F

        probs = []
        for path in images:
            image = Image.open(path)
            if not (self.one_channel and image.mode in ONE_CHANNEL):
                image = image.convert("RGB")
            self.metric.reset()
            self.metric.update((F.to_tensor(image) * self.scale)[None].to(self.device))
            probs.append(torch.atleast_1d(self.metric.compute()).cpu().numpy())
        return probs

    def value(self, values, reference_values, images) -> dict:
        import numpy as np
        import torch

        probs = torch.from_numpy(np.concatenate(values)).double()
        return {"value": probs.mean().item(), "per_image": probs.tolist()}


def _projected_tensor(features):
    """torchmetrics 1.9 takes get_*_features() for the projected tensor; transformers 5 returns an
    output object holding it as pooler_output."""
    def call(*args, **kwargs):
        out = features(*args, **kwargs)
        return getattr(out, "pooler_output", out)

    return call
