"""Scoring pictures as the 4th Jittor AI Challenge (style-transfer track) scores them.

One module per part, each reproducing jdiff_checker's arithmetic (its docstring says how): hist
(OpenCV, no weights), dino (DINOv2), lpips (SqueezeNet LPIPS), fid (InceptionV3), clip_iqa, clip_r
(CLIP); score.py holds the final formula, select.py the choice of a style's best setting. Each part
makes one value per image (metric.py: `compute`), then a style's number from those (`value`);
stored.py keeps the values in the per-image store, so an evaluation computes only new pictures.

A part with weights runs only when they are on this machine (a folder or a hub id already in the
local Hugging Face cache, torch hub checkpoints where torch reads them); otherwise it is reported
unavailable with the reason, never guessed and never downloaded.
"""

from __future__ import annotations

import os
from typing import Sequence

from .clip_iqa import ClipIqa
from .clip_r import ClipR
from .dino import Dino
from .fid import Fid
from .hist import Hist
from .lpips import Lpips
from .score import FINAL, PARTS, final_score, mean_over_styles
from .weights import Unavailable

# Where each part's weights are looked for unless the caller says otherwise: the scorer's models.
DEFAULT_WEIGHTS = dict(dino="facebook/dinov2-base", clip="openai/clip-vit-large-patch14", clip_iqa="clip_iqa",
                       torch_hub="", clip_iqa_scaling="correct")


def numbers_line(options: dict, clip_r_words: str) -> str:
    """One line for scores.json and the report: the challenge scorer's numbers, or which are not."""
    changed = {}
    if {**DEFAULT_WEIGHTS, **options}["clip_iqa_scaling"] != "challenge":
        changed["clip_iqa"] = "CLIP-IQA sees pixels in its network's range (the scorer's: clip_iqa_scaling challenge)"
    if not clip_r_words:
        changed["clip_r"] = "CLIP-R picks among this run's prompts only (the scorer's: a clip_r_words list)"
    if not changed:
        return "The challenge's numbers: every part as its scorer (jdiff_checker) computes it."
    return f"Corrected numbers, not the challenge's for {', '.join([*changed, FINAL])}: {'; '.join(changed.values())}."


def build(part: str, options: dict):
    """The metric object of one part; raises Unavailable when its weights are not here."""
    options = {**DEFAULT_WEIGHTS, **options}
    factories = dict(
        hist=Hist,
        dino=lambda: Dino(options["dino"]),
        lpips=lambda: Lpips(options["torch_hub"]),
        fid=lambda: Fid(options["torch_hub"]),
        clip_iqa=lambda: ClipIqa(options["clip_iqa"], options["clip_iqa_scaling"]),
        clip_r=lambda: ClipR(options["clip"]),
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers / torchmetrics must never download
    return factories[part]()


def available_metrics(parts: Sequence[str], options: dict) -> tuple[dict, dict]:
    """({part: metric object} of the parts whose weights are here, {part: status} of every part)."""
    metrics, status = {}, {}
    for part in PARTS:
        if part not in parts:
            status[part] = {"status": "unavailable", "reason": "not requested"}
            continue
        try:
            metrics[part] = build(part, options)
            status[part] = {"status": "ok", "weights": metrics[part].weights}
        except Unavailable as missing:
            status[part] = {"status": "unavailable", "reason": str(missing)}
    return metrics, status


def score_styles(styles: Sequence[dict], metrics: dict, device: str, clip_r_words: str = "",
                 store=None) -> tuple[dict, dict]:
    """Per style and setting, and per setting overall, the value of every part in `metrics` and the
    final score where all six are present.

    styles: [{"name", "refs": [image], "settings": [{"label", "outputs", "images": [image]}]}]
    store: the per-image store's folder (evaluation/stored.py): images scored before are not scored again.
    Returns ({style: {label: {"outputs", "images", part: value, ..., "final", "per_image": {part: {image: value}}}}},
             {label: {part: value, ..., "final"}}); per-image values for hist, dino, lpips, clip_iqa, clip_r.
    """
    from .stored import PartValues

    per_style = {s["name"]: {x["label"]: {"outputs": x["outputs"], "images": len(x["images"]), "per_image": {}}
                             for x in s["settings"]} for s in styles}
    labels = list(dict.fromkeys(x["label"] for s in styles for x in s["settings"]))
    overall = {label: {} for label in labels}
    made_with = dict(device=device.split(":")[0], versions=library_versions())
    for part, metric in metrics.items():
        values = PartValues(metric, store, device, made_with)
        if part == "clip_r":
            metric.set_candidates([p for s in styles for x in s["settings"] for p in x["images"]], clip_r_words)
        references = [(s["refs"], ()) for s in styles] if metric.reference_values else []
        sets = [(x["images"], s["refs"]) for s in styles for x in s["settings"]]
        values.fetch(references + sets, texts=metric.candidates if part == "clip_r" else ())
        if part == "clip_r":
            metric.text_values = {text: values.text(text) for text in metric.candidates}
        for label in labels:
            results = []
            for style in styles:
                refs = style["refs"]
                for setting in (x for x in style["settings"] if x["label"] == label):
                    images = setting["images"]
                    result = metric.value([values.image(p, refs) for p in images],
                                          [values.image(r) for r in refs] if metric.reference_values else None, images)
                    row = per_style[style["name"]][label]
                    row[part] = result["value"]
                    if "per_image" in result:
                        row["per_image"][part] = dict(zip(map(str, images), result["per_image"]))
                    results.append(result)
            overall[label][part] = (metric.overall(results) if hasattr(metric, "overall")
                                    else mean_over_styles(r["value"] for r in results))
    for rows in [*per_style.values(), overall]:
        for row in rows.values():
            row[FINAL] = final_score(row)
    return per_style, overall


def score_images(part: str, images: Sequence, references: Sequence = (), options: dict | None = None,
                 device: str = "cpu") -> float:
    """One part's value for one set of images of one style (against its reference images; CLIP-R
    uses the images' file names as prompts and candidates). Raises Unavailable without weights."""
    metric = build(part, options or {})
    if part == "clip_r":
        metric.set_candidates(images, (options or {}).get("clip_r_words", ""))
    metric.load(device)
    return metric.style(list(images), list(references))["value"]


VERSIONED = ("jstyleid", "numpy", "opencv-python-headless", "pillow", "torch", "torchvision", "torchmetrics",
             "torch-fidelity", "transformers", "piq")


def library_versions() -> dict:
    """The versions of what the numbers depend on (scores.json records them; stored values are keyed by them)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in VERSIONED:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found
