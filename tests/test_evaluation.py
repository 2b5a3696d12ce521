"""The challenge's scores: Hist against hand-computed values, the final formula, unavailable parts,
and every weighted part through its real library code on random networks saved where the library
reads weights (so only the weights differ from a real run)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from jstyleid.evaluation import available_metrics, build, score_styles
from jstyleid.evaluation import hist
from jstyleid.evaluation.score import PARTS, final_score
from jstyleid.evaluation.weights import Unavailable

# BGR colours and what the scorer's arithmetic makes of them, worked out by hand:
# rgb code = 16 * (G // 16) + R // 16 (blue wraps away in uint8);
# OpenCV HSV (H = degrees / 2): hue degrees = 2 * H mod 256, code = 9 * hue bin + 3 * S bin + V bin.
RED = (0, 0, 255)        # rgb 15;  H 0   -> 0 deg   -> hue bin 0; S 2, V 2 -> code 8
MAGENTA = (255, 0, 255)  # rgb 15;  H 150 -> 300 deg wraps to 44 -> hue bin 2 (not 6) -> code 26
BLACK = (0, 0, 0)        # rgb 0;   H 0, S 0, V 0 -> code 0
BLUE = (255, 0, 0)       # rgb 0;   H 120 -> 240 deg -> hue bin 5 -> code 53
WHITE = (255, 255, 255)  # rgb 255; H 0, S 0, V 2 -> code 2


def write_bgr(path, pixels):
    """A 2 x 2 PNG from four BGR pixels (PIL writes RGB)."""
    rgb = np.array([[p[::-1] for p in pixels[:2]], [p[::-1] for p in pixels[2:]]], dtype=np.uint8)
    Image.fromarray(rgb).save(path)
    return path


def pearson(a: dict, b: dict, bins: int) -> float:
    """Correlation of two histograms given as {bin: count}, from the definition."""
    x = [a.get(i, 0.0) for i in range(bins)]
    y = [b.get(i, 0.0) for i in range(bins)]
    mx, my = sum(x) / bins, sum(y) / bins
    cov = sum((u - mx) * (v - my) for u, v in zip(x, y))
    return cov / math.sqrt(sum((u - mx) ** 2 for u in x) * sum((v - my) ** 2 for v in y))


def test_hist_equals_hand_computed_values(tmp_path):
    gen = [write_bgr(tmp_path / "g0.png", [RED, RED, MAGENTA, BLACK]),
           write_bgr(tmp_path / "g1.png", [BLUE, WHITE, WHITE, MAGENTA])]
    refs = [write_bgr(tmp_path / "r0.png", [BLUE, BLUE, BLUE, BLUE]),
            write_bgr(tmp_path / "r1.png", [RED, RED, WHITE, BLACK])]
    ref_rgb = {0: (4 + 1) / 2, 15: 2 / 2, 255: 1 / 2}
    ref_hsv = {53: 4 / 2, 8: 2 / 2, 2: 1 / 2, 0: 1 / 2}
    gen_rgb = [{15: 3, 0: 1}, {0: 1, 255: 2, 15: 1}]
    gen_hsv = [{8: 2, 26: 1, 0: 1}, {53: 1, 2: 2, 26: 1}]
    rgb = sum(pearson(ref_rgb, g, 4096) for g in gen_rgb) / 2
    hsv = sum(pearson(ref_hsv, g, 72) for g in gen_hsv) / 2
    assert hist.hist_score(gen, refs) == pytest.approx((rgb + hsv) / 2, abs=1e-9)
    # the quirks themselves: blue does not count, magenta's hue lands in bin 2
    image = hist.read_bgr(gen[0])
    assert hist.rgb_histogram(image)[15, 0] == 3 and hist.rgb_histogram(image).sum() == 4
    assert sorted(hist.hsv_codes(image).ravel().tolist()) == [0, 8, 8, 26]


def test_hsv_code_71_is_dropped_as_calchist_drops_it():
    import cv2

    codes = np.array([[71, 70, 0, 71], [35, 71, 8, 53]], dtype=np.uint8)
    ours = hist.hsv_histogram(codes)
    assert ours[71, 0] == 0 and ours[70, 0] == 1 and ours.sum() == 5 and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, cv2.calcHist([codes], [0], None, [72], [0, 71]))


def rederived_hist(gen_paths, ref_paths):
    """The scorer's Hist, re-derived pixel by pixel in plain Python (float32 reference mean)."""
    import cv2

    def hists(path):
        bgr = cv2.imread(str(path))
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        rgb, codes = np.zeros(4096, np.float32), np.zeros(72, np.float32)
        for (b, g, r), (h, s, v) in zip(bgr.reshape(-1, 3).tolist(), hsv.reshape(-1, 3).tolist()):
            rgb[(((b // 16) * 16 * 16) % 256 + (g // 16) * 16 + r // 16) % 256] += 1
            deg = (2 * h) % 256
            hue = next((i for i, top in enumerate([20, 40, 75, 155, 190, 270, 295, 315]) if deg <= top), 0)
            code = 9 * hue + 3 * (0 if s <= 51 else 1 if s <= 178 else 2) + (0 if v <= 51 else 1 if v <= 178 else 2)
            if code < 71:
                codes[code] += 1
        return rgb, codes

    refs = [hists(p) for p in ref_paths]
    mean = [sum((r[k] for r in refs), np.zeros_like(refs[0][k])) / np.float32(len(refs)) for k in (0, 1)]
    scores = [[pearson(dict(enumerate(mean[k].tolist())), dict(enumerate(hists(p)[k].tolist())), len(mean[k]))
               for p in gen_paths] for k in (0, 1)]
    return (sum(scores[0]) / len(gen_paths) + sum(scores[1]) / len(gen_paths)) / 2


def test_hist_equals_rederivation_on_random_pictures(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
        paths.append(tmp_path / f"{i}.png")
    assert hist.hist_score(paths[:2], paths[2:]) == pytest.approx(rederived_hist(paths[:2], paths[2:]), abs=1e-9)


def test_final_formula_on_given_parts():
    parts = dict(dino=0.5, hist=0.6, lpips=0.7, fid=30.0, clip_iqa=0.4, clip_r=0.8)
    assert final_score(parts) == pytest.approx((0.1 + 0.24 + 0.12) * (0.4 + 0.0 + 0.04))
    assert final_score({**parts, "fid": 5.0}) == pytest.approx((0.1 + 0.24 + 0.12) * (0.4 + 0.4 * 15 / 20 + 0.04))
    assert final_score({**parts, "clip_r": None}) is None


def test_missing_weights_are_unavailable_and_no_final(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path))  # piq's ~/.cache/clip
    metrics, status = available_metrics(PARTS, dict(dino="no-such/model", clip=str(tmp_path / "nothing")))
    assert list(metrics) == ["hist"] and status["hist"]["status"] == "ok"
    for part in PARTS[1:]:
        assert status[part]["status"] == "unavailable" and status[part]["reason"], part
    assert "not in the local Hugging Face cache" in status["dino"]["reason"]
    assert "squeezenet1_1-b8a52dc0.pth" in status["lpips"]["reason"]
    g = write_bgr(tmp_path / "g.png", [RED, RED, BLUE, BLACK])
    r = write_bgr(tmp_path / "r.png", [RED, WHITE, BLUE, BLACK])
    styles = [dict(name="00", refs=[r], settings=[dict(label="styleid", outputs=str(tmp_path), images=[g])])]
    per_style, overall = score_styles(styles, metrics, "cpu")
    assert overall["styleid"]["hist"] == pytest.approx(hist.hist_score([g], [r]))
    assert overall["styleid"]["final"] is None and "dino" not in per_style["00"]["styleid"]
