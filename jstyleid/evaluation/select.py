"""Choosing each style's submission among its StyleID outputs by one score.

The candidates are the style's settings other than the content images ("styleid", the default
output, and every sweep setting), as listed in scores.json; the winner is the one with the best
value of `metric` (a part or "final"; higher is better, lower for LPIPS and FID), and the margin is
its lead over the runner-up.

With `select_per: prompt` (`choose_per_prompt`) each prompt gets its own winner: the candidate whose
image of that prompt (images matched across candidates by file stem) has the best per-image value
in scores.json's `per_image`. Hist, DINO, LPIPS, CLIP-IQA and CLIP-R have per-image values; FID is
a distance between sets and has none. For "final" the per-image value is the challenge's formula
(score.py) on the image's own parts with FID held at the candidate's set-level value:

    final_i = (0.2 dino_i + 0.4 hist_i + 0.4 (1 - lpips_i))
              x (0.5 clip_r_i + 0.4 (20 - min(FID_set, 20)) / 20 + 0.1 clip_iqa_i)

Ties go to the default output "styleid", then to the candidate first in scores.json's label order.
"""

from __future__ import annotations

from ..errors import InputError
from .score import FINAL, LOWER_IS_BETTER, PARTS, final_score

CONTENT = "content"
DEFAULT = "styleid"
METRICS = (FINAL, *PARTS)
PER_IMAGE_PARTS = tuple(p for p in PARTS if p != "fid")  # FID compares sets: no per-image value


def choose(scores: dict, metric: str, style: str, where="scores") -> dict:
    """{"setting", "outputs", "metric", "value", "runner_up", "margin"} for one style."""
    if metric not in METRICS:
        raise InputError("select", f"{metric!r} is not a score; choose one of {', '.join(METRICS)}")
    status = scores["metrics"].get(metric, {"status": "ok"}) if metric != FINAL else _final_status(scores)
    if status["status"] != "ok":
        raise InputError(where, f"select: {metric} is unavailable ({status['reason']})")
    rows = scores["styles"].get(style)
    if rows is None:
        raise InputError(where, f"style {style} was not evaluated")
    ranked = [(label, row) for label, row in rows.items() if label != CONTENT and row.get(metric) is not None]
    if not ranked:
        raise InputError(where, f"select: style {style} has no StyleID output with a {metric} value")
    ranked.sort(key=lambda item: item[1][metric], reverse=metric not in LOWER_IS_BETTER)
    (label, best), runner = ranked[0], ranked[1] if len(ranked) > 1 else None
    return {"setting": label, "outputs": best["outputs"], "metric": metric, "value": best[metric],
            "runner_up": runner[0] if runner else None,
            "margin": abs(best[metric] - runner[1][metric]) if runner else None}


def choose_per_prompt(scores: dict, metric: str, style: str, where="scores") -> dict:
    """{"metric", "prompts": {prompt file stem: {"setting", "outputs", "value"}}, "wins": {setting: count}}:
    per prompt the candidate with the best per-image value of `metric` (module docstring)."""
    if metric == "fid":
        raise InputError(where, "select_per prompt: fid has no per-image values (it compares sets); "
                                f"choose one of {', '.join((FINAL, *PER_IMAGE_PARTS))}")
    choose(scores, metric, style, where)  # the same checks: a known score, available, evaluated
    rows = scores["styles"][style]
    candidates = sorted((label for label in rows if label != CONTENT), key=lambda label: label != DEFAULT)
    per_candidate = {label: _per_image_values(rows[label], metric, label, style, where) for label in candidates}
    better = (lambda a, b: a < b) if metric in LOWER_IS_BETTER else (lambda a, b: a > b)
    prompts = {}
    for label in candidates:  # strictly better only: a tie keeps the earlier candidate
        for name, value in per_candidate[label].items():
            if value is not None and (name not in prompts or better(value, prompts[name]["value"])):
                prompts[name] = dict(setting=label, outputs=rows[label]["outputs"], value=value)
    wins = {label: sum(p["setting"] == label for p in prompts.values()) for label in candidates}
    return {"metric": metric, "prompts": dict(sorted(prompts.items())), "wins": wins}


def _per_image_values(row: dict, metric: str, label: str, style: str, where) -> dict:
    """{prompt file stem: value} of one candidate; for final, the formula per image with its set-level FID."""
    from pathlib import Path

    parts = PER_IMAGE_PARTS if metric == FINAL else (metric,)
    per_image = row.get("per_image") or {}
    missing = [p for p in parts if p not in per_image]
    if missing:
        raise InputError(where, f"select_per prompt: style {style} setting {label} has no per-image "
                                f"{', '.join(missing)} values")
    by_name = {p: {Path(image).stem: value for image, value in per_image[p].items()} for p in parts}
    names = set.intersection(*(set(values) for values in by_name.values()))
    if metric != FINAL:
        return {name: by_name[metric][name] for name in names}
    return {name: final_score({**{p: by_name[p][name] for p in parts}, "fid": row.get("fid")}) for name in names}


def _final_status(scores):
    missing = [p for p in PARTS if scores["metrics"][p]["status"] != "ok"]
    return {"status": "ok"} if not missing else {"status": "unavailable", "reason": f"{', '.join(missing)} unavailable"}
