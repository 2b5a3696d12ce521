"""Several candidates per prompt, the best kept: K seeds per prompt, each scored against the style's
references by a metric of jstyleid.evaluation (higher is better), the winner copied to the prompt's output.

Candidate k of a prompt is written to <output folder>/candidates/<k>/<prompt>.png (so CLIP-R finds its
prompt in the file name, as the challenge's scorer does) and the scores to candidates/scores.json.
Candidate 0 is the image a single-candidate run makes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Sequence

from ..errors import InputError

# A scorer: (candidate image paths, reference image paths) -> one score per candidate, higher is better.
Scorer = Callable[[Sequence[Path], Sequence[Path]], list]
METRICS = ("hist", "dino", "clip_r")


class MetricScorer:
    """A Scorer from the evaluation package: each candidate's own value of the metric (its per_image).

    Made before any image is generated (weights that are not here are refused then); load() once the
    generation's model holds its device.
    """

    def __init__(self, metric: str, weights: str = ""):
        from ..evaluation import DEFAULT_WEIGHTS, build
        from ..evaluation.weights import Unavailable

        option = dict(dino="dino", clip_r="clip").get(metric)
        self.name = metric
        try:
            self.metric = build(metric, {option: weights or DEFAULT_WEIGHTS[option]} if option else {})
        except Unavailable as missing:
            raise InputError("--candidates-metric", f"{metric} cannot score here: {missing}") from None

    def load(self, device: str) -> "MetricScorer":
        self.metric.load(device)
        return self

    def __call__(self, candidates, references) -> list:
        if self.name == "clip_r":  # the texts to retrieve among: the own prompts of all candidates
            self.metric.set_candidates(list(candidates))
        return self.metric.style(list(candidates), references)["per_image"]


def candidate_paths(out, count: int) -> list[Path]:
    out = Path(out)
    return [out.parent / "candidates" / str(k) / out.name for k in range(count)]


def keep_best(outs: Sequence, count: int, scorer: Scorer, references: Sequence, metric: str) -> dict:
    """Score every candidate (one scorer call for all prompts), copy each prompt's best (the first of
    equals) to its output, and record {prompt file: {"scores": [...], "kept": k}} in candidates/scores.json."""
    from ..storage.fileio import atomic_path

    outs = [Path(out) for out in outs]
    paths = [candidate_paths(out, count) for out in outs]
    scores = [float(s) for s in scorer([p for group in paths for p in group], references)]
    chosen = {}
    for i, out in enumerate(outs):
        mine = scores[i * count:(i + 1) * count]
        best = max(range(count), key=lambda k: (mine[k], -k))
        with atomic_path(out) as tmp:
            shutil.copyfile(paths[i][best], tmp)
        chosen.setdefault(out.parent, {})[out.stem] = dict(scores=mine, kept=best)
    for folder, table in chosen.items():
        with atomic_path(folder / "candidates" / "scores.json") as tmp:
            tmp.write_text(json.dumps(dict(metric=metric, prompts=table), indent=1, ensure_ascii=False))
    return chosen
