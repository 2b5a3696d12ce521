"""The challenge's scores: Hist against hand-computed values, the final formula, unavailable parts,
and every weighted part through its real library code on random networks saved where the library
reads weights (so only the weights differ from a real run)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jstyleid.evaluation import available_metrics, build, score_styles
from jstyleid.evaluation import hist
from jstyleid.evaluation.score import PARTS, final_score

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
    assert str(tmp_path / ".cache" / "clip" / "RN50.pt") in status["clip_iqa"]["reason"]  # where piq reads
    g = write_bgr(tmp_path / "g.png", [RED, RED, BLUE, BLACK])
    r = write_bgr(tmp_path / "r.png", [RED, WHITE, BLUE, BLACK])
    styles = [dict(name="00", refs=[r], settings=[dict(label="styleid", outputs=str(tmp_path), images=[g])])]
    per_style, overall = score_styles(styles, metrics, "cpu")
    assert overall["styleid"]["hist"] == pytest.approx(hist.hist_score([g], [r]))
    assert overall["styleid"]["final"] is None and "dino" not in per_style["00"]["styleid"]


# The weighted parts on random networks of the scorer's classes (conftest: random_weights, torch_home).


@pytest.fixture
def two_styles(tmp_path):
    """Two styles of smooth random pictures: 3 generated (named by prompt) and 3 references each."""
    from conftest import write_image

    styles = []
    for s, prompts in enumerate([["Cat", "Red tree", "Ship"], ["Dog", "Moon", "A house"]]):
        (tmp_path / f"{s}").mkdir()
        gen = [write_image(tmp_path / f"{s}" / f"{p}.png", seed=10 * s + i, size=(40, 36)) for i, p in enumerate(prompts)]
        refs = [write_image(tmp_path / f"ref{s}_{i}.png", seed=100 + 10 * s + i, size=(48, 48)) for i in range(3)]
        styles.append((gen, refs))
    return styles


def test_dino_is_the_mean_pairwise_cosine_of_pooler_outputs(torch_home, two_styles):
    import torch
    from transformers import AutoImageProcessor, AutoModel

    gen, refs = two_styles[0]
    metric = build("dino", dict(dino=torch_home["dino"]))
    metric.load("cpu")
    processor = AutoImageProcessor.from_pretrained(torch_home["dino"], backend="pil")  # the scorer's PIL path
    model = AutoModel.from_pretrained(torch_home["dino"])

    def pooled(path):
        with torch.no_grad():
            return model(**processor(images=Image.open(path), return_tensors="pt")).pooler_output

    expected = np.mean([np.mean([torch.nn.functional.cosine_similarity(pooled(r), pooled(g)).item() for r in refs])
                        for g in gen])
    assert metric.style(gen, refs)["value"] == pytest.approx(expected, abs=1e-5)


def test_lpips_is_torchmetrics_squeeze_lpips_over_all_pairs(torch_home, two_styles):
    import torch
    from torchmetrics.functional.image.lpips import learned_perceptual_image_patch_similarity
    from torchvision.transforms import Compose, Lambda, Resize, ToTensor

    gen, refs = two_styles[0]
    metric = build("lpips", {})
    assert metric.weights.startswith(str(torch_home["torch_home"]))
    metric.load("cpu")
    transform = Compose([Resize((256, 256)), ToTensor(), Lambda(lambda x: x * 2 - 1)])
    a = torch.stack([transform(Image.open(g))[:3] for g in gen for _ in refs])
    b = torch.stack([transform(Image.open(r))[:3] for _ in gen for r in refs])
    expected = learned_perceptual_image_patch_similarity(a, b, net_type="squeeze").item()
    assert metric.style(gen, refs)["value"] == pytest.approx(expected, abs=1e-6)


def test_fid_per_style_and_pooled_over_styles(torch_home, two_styles):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchvision.transforms import ToTensor

    metric = build("fid", {})
    metric.load("cpu")
    results = [metric.style(gen, refs) for gen, refs in two_styles]

    def fid(pairs):
        reference = FrechetInceptionDistance(feature=64, feature_extractor_weights_path=metric.weights,
                                             antialias=False)  # torchmetrics 1.2's resize, the scorer's
        for gen, refs in pairs:
            for r in refs:
                reference.update((ToTensor()(Image.open(r)) * 255).byte()[None], real=True)
            for g in gen:
                reference.update((ToTensor()(Image.open(g)) * 255).byte()[None], real=False)
        return reference.compute().item()

    assert results[1]["value"] == pytest.approx(fid([two_styles[1]]), rel=1e-6)
    pooled = fid(two_styles)
    assert metric.overall(results) == pytest.approx(pooled, rel=1e-6) and pooled != pytest.approx(results[0]["value"])


def test_clip_iqa_is_torchmetrics_clip_iqa_and_scaling_switch(torch_home, two_styles):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    from jstyleid.evaluation.clip_iqa import pixel_scale

    gen, _ = two_styles[0]
    metric = build("clip_iqa", dict(clip_iqa=torch_home["clip"]))
    metric.load("cpu")
    model = CLIPModel.from_pretrained(torch_home["clip"])
    processor = CLIPProcessor.from_pretrained(torch_home["clip"], backend="pil")  # the scorer's PIL path
    with torch.no_grad():  # the metric's formula: softmax(100 cos(image, ["Good photo.", "Bad photo."]))[0]
        text = model.get_text_features(**processor(text=["Good photo.", "Bad photo."], return_tensors="pt", padding=True))
        image = model.get_image_features(**processor(images=[Image.open(g) for g in gen], return_tensors="pt"))
    text, image = (getattr(t, "pooler_output", t) for t in (text, image))
    cosine = torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    expected = (100 * cosine).softmax(dim=-1)[:, 0].mean().item()
    value = metric.style(gen)["value"]
    assert value == pytest.approx(expected, abs=1e-6) and 0 < value < 1
    # piq's model (the challenge's) sees [0, 1] pixels by default, the scorer's 0..255 with `challenge`
    assert (pixel_scale("clip_iqa", "correct"), pixel_scale("clip_iqa", "challenge")) == (1.0, 255.0)
    assert pixel_scale(torch_home["clip"], "correct") == 255.0  # CLIPProcessor divides by 255 itself


@pytest.fixture
def piq_clip(random_weights, tmp_path, monkeypatch):
    """piq's CLIP class (ResNet image tower), small and random (RN50's 1024-wide embedding keeps the
    softmax of 100 x cosine off 0 and 1), traced to TorchScript at
    $HOME/.cache/clip/RN50.pt as piq's clip.load() reads it, and a CLIP processor with 77-token
    context cached as openai/clip-vit-base-patch16, the hub id torchmetrics takes the tokenizer from."""
    import shutil

    import torch
    from piq.feature_extractors import clip
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(random_weights["clip"], model_max_length=77)
    torch.manual_seed(2)
    model = clip.CLIP(embed_dim=1024, image_resolution=64, vision_layers=(1, 1, 1, 1), vision_width=64,
                      vision_patch_size=None, context_length=77, vocab_size=len(tokenizer), transformer_width=64,
                      transformer_heads=1, transformer_layers=1).eval()
    weights = tmp_path / "home" / ".cache" / "clip" / "RN50.pt"
    weights.parent.mkdir(parents=True)
    example = (torch.rand(1, 3, 64, 64), torch.zeros(1, 77, dtype=torch.long))
    with torch.no_grad(), pytest.warns(torch.jit.TracerWarning):
        torch.jit.save(torch.jit.trace(model, example, check_trace=False), weights)
    cache, commit = tmp_path / "hf", "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--openai--clip-vit-base-patch16"
    snapshot = repo / "snapshots" / commit
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(snapshot)
    shutil.copy(f"{random_weights['clip']}/config.json", snapshot)  # AutoTokenizer reads the model type there
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    return dict(weights=weights, tokenizer=tokenizer)


def test_clip_iqa_default_is_piqs_clip_through_torchmetrics_in_both_scalings(piq_clip, two_styles):
    import torch
    from piq.feature_extractors import clip
    from torchvision.transforms.functional import to_tensor

    gen, _ = two_styles[0]
    model = clip.build_model(torch.jit.load(piq_clip["weights"]).state_dict()).float().eval()
    tokens = torch.zeros(2, 77, dtype=torch.long)  # the anchors' token ids, zero-padded to the context
    for row, ids in zip(tokens, piq_clip["tokenizer"](["Good photo.", "Bad photo."])["input_ids"]):
        row[:len(ids)] = torch.tensor(ids)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    pixels = torch.stack([to_tensor(Image.open(g).convert("RGB")) for g in gen])
    values = {}
    for scaling, scale in (("correct", 1.0), ("challenge", 255.0)):
        metric = build("clip_iqa", dict(clip_iqa_scaling=scaling))  # default model "clip_iqa"
        assert metric.weights.startswith(f"{piq_clip['weights']} + openai/clip-vit-base-patch16")
        metric.load("cpu")
        with torch.no_grad():  # by hand: softmax(100 cos(image, anchors))[0], images CLIP-normalised
            text = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
            image = model.encode_image((pixels * scale - mean) / std, pos_embedding=False)
        expected = (100 * torch.nn.functional.normalize(image, dim=-1) @ text.T).softmax(dim=-1)[:, 0]
        result = metric.style(gen)
        assert 0.01 < expected.min() and expected.max() < 0.99  # not saturated: the values can tell
        assert result["per_image"] == pytest.approx(expected.tolist(), abs=1e-5)
        assert result["value"] == pytest.approx(expected.mean().item(), abs=1e-5)
        values[scaling] = result["value"]
    assert values["correct"] != pytest.approx(values["challenge"], abs=1e-4)


def test_clip_r_counts_own_prompt_in_top5_pooled(torch_home, two_styles, tmp_path):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    words = tmp_path / "words.txt"
    words.write_text("Cat\nBird\nRiver\nCar\n")
    metric = build("clip_r", dict(clip=torch_home["clip"]))
    images = [p for gen, _ in two_styles for p in gen]
    metric.set_candidates(images, str(words))
    metric.load("cpu")
    results = [metric.style(gen) for gen, _ in two_styles]
    model = CLIPModel.from_pretrained(torch_home["clip"])
    processor = CLIPProcessor.from_pretrained(torch_home["clip"], backend="pil")  # the scorer's PIL path
    texts = sorted({"cat", "bird", "river", "car", "dog", "moon", "a house", "red tree", "ship"})
    correct = 0
    for path in images:
        with torch.no_grad():
            inputs = processor(text=texts, images=Image.open(path), return_tensors="pt", padding=True)
            probs = model(**inputs).logits_per_image.softmax(dim=1)[0]
        correct += path.stem.lower() in [texts[i] for i in torch.topk(probs, 5).indices.tolist()]
    assert metric.candidates == texts
    assert metric.overall(results) == correct / len(images)
    assert [r["total"] for r in results] == [3, 3]


def test_evaluate_cli_reports_every_part_and_the_final_score(torch_home, two_styles, tmp_path):
    from jstyleid.cli import main

    styles = [dict(name=f"0{s}", refs=[str(r) for r in refs],
                   settings=[dict(label="styleid", outputs=str(gen[0].parent), images=[str(g) for g in gen])])
              for s, (gen, refs) in enumerate(two_styles)]
    out = tmp_path / "scores.json"
    (tmp_path / "manifest.json").write_text(json.dumps(dict(styles=styles)))
    assert main(["evaluate", "--manifest", str(tmp_path / "manifest.json"), "--out", str(out), "--device", "cpu",
                 "--dino", torch_home["dino"], "--clip", torch_home["clip"], "--clip-iqa", torch_home["clip"]]) == 0
    scores = json.loads(out.read_text())
    assert all(scores["metrics"][p]["status"] == "ok" for p in PARTS)
    overall = scores["overall"]["styleid"]
    assert overall["final"] == pytest.approx(final_score(overall)) and overall["final"] is not None
    assert overall["hist"] == pytest.approx(np.mean([scores["styles"][s]["styleid"]["hist"] for s in ("00", "01")]))
    assert scores["versions"]["torchmetrics"] and scores["versions"]["opencv-python-headless"]


def test_upload_layout_scores_every_file_as_the_scorer_lists_them(tmp_path, capsys):
    from jstyleid.cli import main
    from jstyleid.evaluation import score_images

    (tmp_path / "sub/03").mkdir(parents=True)
    gen = [write_bgr(tmp_path / "sub/03/Cat.png", [RED, RED, BLUE, BLACK]),
           write_bgr(tmp_path / "sub/03/Dog.png", [MAGENTA, WHITE, BLUE, BLUE])]
    (tmp_path / "B/03/images").mkdir(parents=True)
    refs = [write_bgr(tmp_path / "B/03/images/a.png", [WHITE, RED, RED, BLACK])]
    (tmp_path / "sub/mapping.json").write_text("{}")  # beside the style folders, as submission writes it
    out = tmp_path / "s.json"
    assert main(["evaluate", "--upload", str(tmp_path / "sub"), "--gt", str(tmp_path / "B"), "--out", str(out),
                 "--parts", "hist", "--clip-iqa-scaling", "challenge", "--clip-r-words", str(tmp_path / "B")]) == 0
    scores = json.loads(out.read_text())
    assert scores["numbers"].startswith("The challenge's numbers")
    assert scores["styles"]["03"]["submission"]["images"] == 2
    per_image = scores["styles"]["03"]["submission"]["per_image"]["hist"]
    assert sorted(per_image) == sorted(map(str, gen)) and per_image[str(gen[0])] == pytest.approx(hist.hist_score(gen[:1], refs))
    assert scores["overall"]["submission"]["hist"] == pytest.approx(hist.hist_score(gen, refs), abs=1e-12)
    assert score_images("hist", gen, refs) == scores["overall"]["submission"]["hist"]
    (tmp_path / "B/03/images/a.png").unlink()
    assert main(["evaluate", "--upload", str(tmp_path / "sub"), "--gt", str(tmp_path / "B"), "--out", str(out)]) == 2
    assert "B/03/images: no reference images for style 03" in capsys.readouterr().err


# The scorer's preprocessing, recomputed independently of the libraries that do it here, so that an
# upgrade changing it turns these red (docs/evaluation-crosscheck.md: the cross-check with the scorer).

def tf1_bilinear(a, size):
    """torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x (align_corners=False) in float32
    NumPy: source = float32(dst * in / out), no half-pixel offset, edge clamped, x then y."""
    def axis(n_in):
        src = np.arange(size, dtype=np.float32) * np.float32(n_in / size)
        lo = src.astype(np.int64)
        return lo, np.minimum(lo + 1, n_in - 1), (src - lo.astype(np.float32))

    (y0, y1, dy), (x0, x1, dx) = axis(a.shape[-2]), axis(a.shape[-1])
    a = a.astype(np.float32)
    top = a[..., y0, :][..., x0] + (a[..., y0, :][..., x1] - a[..., y0, :][..., x0]) * dx
    bottom = a[..., y1, :][..., x0] + (a[..., y1, :][..., x1] - a[..., y1, :][..., x0]) * dx
    return top + (bottom - top) * dy[:, None]


@pytest.mark.parametrize("size", [(512, 512), (768, 768), (300, 517)])
def test_fid_network_sees_the_tensorflow_bilinear_resize_to_299(torch_home, tmp_path, size):
    import torch

    rng = np.random.default_rng(3)
    path = tmp_path / "x.png"
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    metric = build("fid", {})
    metric.load("cpu")
    seen = []
    first = metric.inception.Conv2d_1a_3x3
    hook = first.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    with torch.no_grad():
        metric.compute([path])
    hook.remove()
    pixels = np.asarray(Image.open(path)).transpose(2, 0, 1)[None]
    expected = (tf1_bilinear(pixels, 299) - 128) / 128  # torch-fidelity's input scaling
    assert seen[0].shape == (1, 3, 299, 299)
    np.testing.assert_allclose(seen[0].numpy(), expected, rtol=0, atol=1e-6)


PRECISION_BITS = 22  # Pillow's Resample.c (8-bit images): 32 - 8 - 2


def pillow11_pass(a, size_out):
    """One bilinear pass of Pillow 11 along axis 0 of uint8 `a` (precompute_coeffs, then the
    fixed-point coefficients of normalize_coeffs_8bpc), rounded back to uint8 as between its passes."""
    size_in = a.shape[0]
    scale = size_in / size_out
    support = max(scale, 1.0)  # bilinear's support 1, widened when reducing
    out = np.empty((size_out,) + a.shape[1:], np.int64)
    for xx in range(size_out):
        center = (xx + 0.5) * scale
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), size_in)
        w = np.array([max(0.0, 1.0 - abs((x - center + 0.5) / support)) for x in range(lo, hi)])
        fixed = np.trunc(w / w.sum() * (1 << PRECISION_BITS) + 0.5).astype(np.int64)
        acc = (1 << (PRECISION_BITS - 1)) + np.tensordot(fixed, a[lo:hi].astype(np.int64), axes=1)
        out[xx] = np.clip(acc >> PRECISION_BITS, 0, 255)
    return out.astype(np.uint8)


def pillow11_bilinear(a, width, height):
    """H x W x C uint8 as the scorer's Pillow 11 resizes it (BILINEAR): horizontal pass, vertical pass,
    RGBA premultiplied around them (Convert.c's rgbA2rgba and rgba2rgbA)."""
    rgba = a.shape[2] == 4
    if rgba:
        t = a[..., :3].astype(np.int64) * a[..., 3:] + 128
        a = np.concatenate([((t >> 8) + t) >> 8, a[..., 3:]], axis=2).astype(np.uint8)
    a = pillow11_pass(a.transpose(1, 0, 2), width).transpose(1, 0, 2) if a.shape[1] != width else a
    a = pillow11_pass(a, height) if a.shape[0] != height else a
    if rgba:
        alpha = a[..., 3:].astype(np.int64)
        colour = np.minimum(255 * a[..., :3].astype(np.int64) // np.maximum(alpha, 1), 255)
        a = np.concatenate([np.where((alpha == 0) | (alpha == 255), a[..., :3], colour), alpha], axis=2)
    return a.astype(np.uint8)


@pytest.mark.parametrize("size,mode", [((512, 512), "RGB"), ((768, 768), "RGB"), ((300, 517), "RGB"),
                                       ((512, 512), "RGBA"), ((768, 768), "RGBA")])
def test_lpips_input_is_pillow11_bilinear_of_the_file_as_it_is(tmp_path, size, mode):
    from jstyleid.evaluation.lpips import lpips_input

    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (*size, len(mode)), dtype=np.uint8)
    if mode == "RGBA":  # transparent, opaque and partial alpha: the premultiplication shows
        pixels[..., 3] = rng.choice([0, 255, 7, 128, 200], size)
    path = tmp_path / "x.png"
    Image.fromarray(pixels, mode).save(path)
    expected = pillow11_bilinear(pixels, 256, 256)[..., :3].transpose(2, 0, 1).astype(np.float32) / 255 * 2 - 1
    np.testing.assert_array_equal(lpips_input(path).numpy(), expected)
    if mode == "RGBA":  # not the RGB conversion's resize
        rgb = pillow11_bilinear(np.ascontiguousarray(pixels[..., :3]), 256, 256).transpose(2, 0, 1)
        assert (rgb.astype(np.float32) / 255 * 2 - 1 != expected).mean() > 0.1


def pil_processor_pixels(processor, path):
    """transformers 4.47's PIL preprocessing by hand: RGB, bicubic resize of the short side to
    size["shortest_edge"] (long side int(short * long / short)), centre crop, x / 255 in float64 then
    float32, (x - mean) / std in float32, channels first."""
    image = Image.open(path).convert("RGB")
    short = processor.size["shortest_edge"]
    w, h = image.size
    size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    pixels = np.asarray(image.resize(size, Image.Resampling(processor.resample)))
    ch, cw = processor.crop_size["height"], processor.crop_size["width"]
    top, left = (pixels.shape[0] - ch) // 2, (pixels.shape[1] - cw) // 2
    pixels = (pixels[top:top + ch, left:left + cw].astype(np.float64) * processor.rescale_factor).astype(np.float32)
    mean, std = (np.array(v, dtype=np.float32) for v in (processor.image_mean, processor.image_std))
    return ((pixels - mean) / std).transpose(2, 0, 1)


@pytest.mark.parametrize("part", ["dino", "clip_r"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P"])
def test_dino_and_clip_r_preprocess_as_the_scorers_pil_processors(torch_home, tmp_path, part, mode):
    from conftest import write_image

    metric = build(part, dict(dino=torch_home["dino"], clip=torch_home["clip"]))
    metric.load("cpu")
    processor = getattr(metric.processor, "image_processor", metric.processor)
    for i, size in enumerate([(40, 36), (36, 52)]):
        path = write_image(tmp_path / f"{i}.png", seed=i, size=size, mode=mode)
        if mode == "RGBA":
            image = Image.open(path)
            image.putalpha(Image.fromarray(np.random.default_rng(i).integers(0, 256, size[::-1], dtype=np.uint8)))
            image.save(path)
        got = processor(images=[Image.open(path).convert("RGB")], return_tensors="np")["pixel_values"][0]
        np.testing.assert_array_equal(got, pil_processor_pixels(processor, path))


def test_clip_iqa_challenge_reads_grey_and_palette_files_as_the_scorer(piq_clip, tmp_path):
    """The scorer's ToTensor gives a palette file one channel of palette indices (broadcast to three by
    the CLIP normalisation): `challenge` scores it as the grey picture of its indices."""
    from conftest import write_image

    palette = Image.open(write_image(tmp_path / "rgb.png", seed=5, size=(40, 36))).convert("P")
    palette.save(tmp_path / "p.png")
    Image.fromarray(np.asarray(palette)).save(tmp_path / "indices.png")  # mode L: the indices as grey
    palette.convert("RGB").save(tmp_path / "colours.png")
    values = {}
    for scaling in ("challenge", "correct"):
        metric = build("clip_iqa", dict(clip_iqa_scaling=scaling))
        metric.load("cpu")
        values[scaling] = {name: metric.style([tmp_path / f"{name}.png"])["value"] for name in ("p", "indices", "colours")}
    assert values["challenge"]["p"] == pytest.approx(values["challenge"]["indices"], abs=1e-7)
    assert values["challenge"]["p"] != pytest.approx(values["challenge"]["colours"], abs=1e-4)
    assert values["correct"]["p"] == pytest.approx(values["correct"]["colours"], abs=1e-7)


def test_clip_r_words_from_the_styles_prompts_and_the_challenge_config(tmp_path):
    import subprocess
    import sys

    import yaml

    from jstyleid.evaluation import numbers_line
    from jstyleid.evaluation.clip_r import read_words, style_prompts
    from jstyleid.errors import InputError

    for style, prompts in (("00", {"0": "Cat", "1": "Red tree"}), ("01", {"0": "Mr. Bean", "1": "Cat"})):
        (tmp_path / "B" / style).mkdir(parents=True)
        (tmp_path / "B" / style / "prompt.json").write_text(json.dumps(prompts))
    assert style_prompts(tmp_path / "B") == ["Cat", "Red tree", "Mr. Bean"]  # distinct, style by style
    assert read_words(tmp_path / "B") == ["cat", "red tree", "mr. bean"]  # as the scorer reads its lines
    made = subprocess.run([sys.executable, "-m", "jstyleid.evaluation", "clip-r-words", str(tmp_path / "B")],
                          capture_output=True, text=True, check=True).stdout
    (tmp_path / "words.txt").write_text(made)
    assert read_words(tmp_path / "words.txt") == read_words(tmp_path / "B")
    with pytest.raises(InputError, match="no style folders XX/prompt.json"):
        style_prompts(tmp_path)
    challenge = yaml.safe_load((Path(__file__).parents[1] / "config" / "challenge.yaml").read_text())
    assert challenge["evaluation"] == dict(enabled=True, clip_iqa_scaling="challenge", clip_r_words="styles")
    assert numbers_line(challenge["evaluation"], str(tmp_path / "B")).startswith("The challenge's numbers")
    assert numbers_line({}, "").startswith("Corrected numbers, not the challenge's for clip_iqa, clip_r, final")


def test_report_says_whose_numbers_the_scores_are(tmp_path):
    from jstyleid.cli import main
    from jstyleid.evaluation.report import section

    (tmp_path / "sub/03").mkdir(parents=True)
    (tmp_path / "B/03/images").mkdir(parents=True)
    write_bgr(tmp_path / "sub/03/Cat.png", [RED, RED, BLUE, BLACK])
    write_bgr(tmp_path / "B/03/images/a.png", [WHITE, RED, RED, BLACK])
    for flags, line in (([], "Corrected numbers, not the challenge&#x27;s for clip_iqa, clip_r, final"),
                        (["--clip-iqa-scaling", "challenge", "--clip-r-words", str(tmp_path / "B")],
                         "The challenge&#x27;s numbers: every part as its scorer")):
        out = tmp_path / "s.json"
        assert main(["evaluate", "--upload", str(tmp_path / "sub"), "--gt", str(tmp_path / "B"), "--out", str(out),
                     "--parts", "hist", *flags]) == 0
        html = section(dict(scores=str(out), select={}), tmp_path)
        assert line in html and "<table>" in html
