"""Hist: colour-histogram similarity to the style's references, as the challenge scorer computes it.

Reimplements the arithmetic of `hist_score_api` in jdiff_checker (the scorer of the 4th Jittor AI
Challenge, style-transfer track: hist_api.py), including its accidents, so that the number is the
scorer's to 1e-9 on the same files. Read line by line, the scorer does this (numpy 1.26, OpenCV 4):

1. Images are read by `cv2.imread(path)`: 8-bit BGR, alpha dropped, grey expanded to 3 channels.
2. RGB histogram. Each channel is quantised to 16 levels (`c // 16`, uint8) and a joint code
   `B * 16 * 16 + G * 16 + R` is formed -- in uint8, left to right, so `B * 16 * 16` wraps modulo 256
   and is always 0: **blue never counts**, the code is `16 * (G // 16) + R // 16` (0..255), and only the
   first 256 of the 4096 bins of `calcHist(..., [4096], [0, 4096])` are ever filled.
3. HSV histogram. `cv2.cvtColor(BGR2HSV)` gives uint8 H in 0..179 (degrees / 2), S and V in 0..255.
   The scorer doubles H back to degrees with `h = 2 * h` -- in uint8, so **hues of 128..179 (256..358
   degrees) wrap to 0..102 degrees**: magenta (300 deg) lands in the orange bin. Hue bins by degree:
   (315, 360] or [0, 20] -> 0, (20, 40] -> 1, (40, 75] -> 2, (75, 155] -> 3, (155, 190] -> 4,
   (190, 270] -> 5, (270, 295] -> 6, (295, 315] -> 7; after the wrap (values 0..255) bins 6 and 7 and
   the "> 315" half of bin 0 are never reached. S and V: <= 51 -> 0, (51, 178] -> 1, > 178 -> 2.
   Code = 9 * H + 3 * S + V (72 codes, 0..71; the factor 9 = 3 * 3 leaves no gaps).
4. `calcHist([code], [0], None, [72], [0, 71])`: 72 bins over [0, 71), bin width 71/72, and code c
   lands in bin floor(c * 72 / 71) = c for c < 71; **code 71 (hue bin 7, S = V = 2) is outside the
   half-open range and dropped**, bin 71 stays empty. (Code 71 needs hue bin 7, which the uint8 wrap
   of step 3 already makes unreachable, so with real images the drop never shows; codes above 53 are
   all unreachable.)
5. Histograms are float32 pixel counts. The style's reference histogram is the float32 sum of its
   references' histograms divided by their number in float32 (`accumulated / batchsize`); each
   generated image's own histogram is compared with it by `cv2.compareHist(ref, gen, HISTCMP_CORREL)`
   (Pearson correlation over the bins, computed by OpenCV in float64).
6. Per style: the mean over generated images (a Python float sum / count) of the RGB score, and the
   same of the HSV score; the style's Hist is their average (rgb + hsv) / 2. Over styles the scorer
   takes `np.mean` of the per-style values (that last mean is in jstyleid.evaluation.score).

This module computes histograms with numpy (np.bincount), not with calcHist, and keeps OpenCV for
what defines the numbers: imread, cvtColor and compareHist.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import InputError
from .metric import Metric

NAME = "hist"
RGB_BINS = 4096  # 16 x 16 x 16, of which only the first 256 can fill (blue wraps away)
HSV_CODES = 72
HUE_EDGES = (20, 40, 75, 155, 190, 270, 295, 315)  # right-closed upper edges of hue bins 0..7, degrees
SV_EDGES = (51, 178)  # right-closed upper edges of S/V bins 0 and 1
DROPPED_CODE = 71  # outside calcHist's half-open range [0, 71)


def read_bgr(path) -> np.ndarray:
    """The image as `cv2.imread` reads it: uint8 BGR, H x W x 3."""
    import cv2

    image = cv2.imread(str(path))
    if image is None:
        raise InputError(path, "OpenCV cannot read this image")
    return image


def rgb_histogram(bgr: np.ndarray) -> np.ndarray:
    """4096-bin float32 column of the joint colour code; blue drops out (uint8 wrap, see step 2)."""
    green, red = bgr[..., 1].astype(np.int64) // 16, bgr[..., 2].astype(np.int64) // 16
    counts = np.bincount((16 * green + red).ravel(), minlength=RGB_BINS)
    return counts.astype(np.float32).reshape(-1, 1)


def hsv_codes(bgr: np.ndarray) -> np.ndarray:
    """Per-pixel HSV code 9 * hue bin + 3 * S bin + V bin, with the scorer's uint8 hue wrap (step 3)."""
    import cv2

    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV).astype(np.int64)
    degrees = (2 * hsv[..., 0]) % 256
    hue = np.searchsorted(HUE_EDGES, degrees, side="left") % len(HUE_EDGES)  # > 315 joins bin 0
    sat = np.searchsorted(SV_EDGES, hsv[..., 1], side="left")
    val = np.searchsorted(SV_EDGES, hsv[..., 2], side="left")
    return 9 * hue + 3 * sat + val


def hsv_histogram(codes: np.ndarray) -> np.ndarray:
    """72-bin float32 column of the codes, code 71 dropped as calcHist's range [0, 71) drops it."""
    counts = np.bincount(np.asarray(codes, dtype=np.int64).ravel(), minlength=HSV_CODES)[:HSV_CODES]
    counts[DROPPED_CODE] = 0
    return counts.astype(np.float32).reshape(-1, 1)


def reference_histogram(histograms: Sequence[np.ndarray]) -> np.ndarray:
    """float32 sum of the references' histograms divided by their number in float32 (step 5)."""
    total = np.zeros_like(histograms[0], dtype=np.float32)
    for histogram in histograms:
        total += histogram
    return total / np.float32(len(histograms))


def correlation(reference: np.ndarray, generated: np.ndarray) -> float:
    import cv2

    return float(cv2.compareHist(reference, generated, cv2.HISTCMP_CORREL))


def reference_histograms(references: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """The style's RGB and HSV reference histograms (step 5)."""
    if not references:
        raise InputError("references", "Hist needs reference images")
    refs = [read_bgr(p) for p in references]
    return (reference_histogram([rgb_histogram(r) for r in refs]),
            reference_histogram([hsv_histogram(hsv_codes(r)) for r in refs]))


def image_scores(generated: Sequence, references: Sequence) -> list[np.ndarray]:
    """Each generated image's [RGB correlation, HSV correlation] with the references (steps 1-5)."""
    ref_rgb, ref_hsv = reference_histograms(references)
    scores = []
    for path in generated:
        image = read_bgr(path)
        scores.append(np.array([correlation(ref_rgb, rgb_histogram(image)),
                                correlation(ref_hsv, hsv_histogram(hsv_codes(image)))]))
    return scores


def style_hist(scores: Sequence[np.ndarray]) -> tuple[float, list[float]]:
    """The scorer's per-style value from the images' [rgb, hsv] (step 6), and each image's (rgb + hsv) / 2."""
    if not len(scores):
        raise InputError("images", "Hist needs generated images")
    rgb, hsv = [float(s[0]) for s in scores], [float(s[1]) for s in scores]
    rgb_total = hsv_total = 0.0
    for r, h in zip(rgb, hsv):  # Python float sums in the scorer's order
        rgb_total, hsv_total = rgb_total + r, hsv_total + h
    return (rgb_total / len(rgb) + hsv_total / len(hsv)) / 2, [(r + h) / 2 for r, h in zip(rgb, hsv)]


def hist_score(generated: Sequence, references: Sequence) -> float:
    """The scorer's hist_score_api(generated paths, reference paths) for one style."""
    return style_hist(image_scores(generated, references))[0]


class Hist(Metric):
    """Hist per style; over styles the mean of the per-style values."""

    name = NAME
    weights = "none (OpenCV)"
    compares_references = True

    def compute(self, images, references):
        return image_scores(images, references)

    def value(self, values, reference_values, images) -> dict:
        value, per_image = style_hist(values)
        return {"value": value, "per_image": per_image}
