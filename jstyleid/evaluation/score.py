"""The challenge's final score from its six parts (jdiff_checker score_api.get_score):

    final = (0.2 DINO + 0.4 Hist + 0.4 (1 - LPIPS)) x (0.5 CLIP-R + 0.4 (20 - min(FID, 20)) / 20 + 0.1 CLIP-IQA)

The overall parts are the scorer's: Hist, DINO, LPIPS and CLIP-IQA are means over styles (np.mean of
the per-style values), FID is one distance over all styles' images pooled, CLIP-R is correct / total
over all images. A final score exists only when all six parts do. (Comparing with the scorer's
output: the dict get_score returns shows Hist's value under 'clip_iqa_score', a slip of its return
statement; its final_score, and result.json, use the real CLIP-IQA.)
"""

from __future__ import annotations

from typing import Mapping, Optional

PARTS = ("hist", "dino", "lpips", "fid", "clip_iqa", "clip_r")
LOWER_IS_BETTER = frozenset({"lpips", "fid"})
FINAL = "final"


def final_score(parts: Mapping[str, Optional[float]]) -> Optional[float]:
    """The formula on the given parts; None unless all six are present."""
    if any(parts.get(name) is None for name in PARTS):
        return None
    style = 0.2 * parts["dino"] + 0.4 * parts["hist"] + 0.4 * (1 - parts["lpips"])
    fidelity = 0.5 * parts["clip_r"] + 0.4 * (20 - min(parts["fid"], 20)) / 20 + 0.1 * parts["clip_iqa"]
    return style * fidelity


def mean_over_styles(values) -> Optional[float]:
    import numpy as np

    values = list(values)
    return None if not values or any(v is None for v in values) else float(np.mean(values))

