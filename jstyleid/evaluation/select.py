"""Choosing each style's submission among its StyleID outputs by one score.

The candidates are the style's settings other than the content images ("styleid", the default
output, and every sweep setting), as listed in scores.json; the winner is the one with the best
value of `metric` (a part or "final"; higher is better, lower for LPIPS and FID), and the margin is
its lead over the runner-up.
"""

from __future__ import annotations

from ..errors import InputError
from .score import FINAL, LOWER_IS_BETTER, PARTS

CONTENT = "content"
METRICS = (FINAL, *PARTS)


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


def _final_status(scores):
    missing = [p for p in PARTS if scores["metrics"][p]["status"] != "ok"]
    return {"status": "ok"} if not missing else {"status": "unavailable", "reason": f"{', '.join(missing)} unavailable"}
