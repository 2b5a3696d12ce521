"""The report's section on scores: which parts ran (with what weights), an overall table and bar
chart per setting, a table per style, and each style's selected setting."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..errors import InputError
from ..storage.fileio import atomic_path
from .score import FINAL, PARTS
from .select import choose, choose_per_prompt

COLUMNS = (*PARTS, FINAL)


def section(evaluation: dict, out_dir: Path) -> str:
    """HTML of the section; the chart is written to out_dir/scores.png."""
    try:
        scores = json.loads(Path(evaluation["scores"]).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(evaluation["scores"], f"cannot read the scores ({err})") from None
    plot_overall(scores, out_dir / "scores.png")
    parts = "".join(f"<li>{_e(p)}: {_e(s.get('weights') or 'unavailable: ' + s['reason'])}</li>"
                    for p, s in scores["metrics"].items())
    body = [f"<h2>Scores</h2>\n<p>{_e(scores.get('numbers', ''))} Lower is better for lpips and fid; "
            f"final only when all six parts are present.</p><ul>{parts}</ul>",
            "<h3>All styles</h3>", _table(scores["overall"]),
            '<p><img class="loss" src="scores.png" alt="scores per setting"></p>']
    per_prompt = set(evaluation.get("per_prompt", ()))
    for style, rows in scores["styles"].items():
        metric = evaluation["select"].get(style)
        body.append(f"<h3>Style {_e(style)}</h3>")
        if metric and style in per_prompt:
            won = choose_per_prompt(scores, metric, style, where=evaluation["scores"])
            body += [_table(rows, wins=won["wins"]), f"<p>Submitted per prompt by {_e(metric)}: each prompt's image "
                     "from the setting that scores best on it (the prompts each setting won: last column).</p>"]
        else:
            chosen = choose(scores, metric, style, where=evaluation["scores"]) if metric else None
            body += [_table(rows, chosen and chosen["setting"]), _selected(chosen)]
    return "\n".join(body)


def _table(rows: dict, highlight=None, wins=None) -> str:
    """Rows: settings; columns: the parts and final; the submitted setting marked, or with a per-prompt
    choice the number of prompts each setting won."""
    head = "".join(f"<th>{_e(c)}</th>" for c in COLUMNS) + ("<th>prompts won</th>" if wins is not None else "")
    lines = []
    for label, row in rows.items():
        cells = "".join(f"<td class=num>{_number(row.get(c))}</td>" for c in COLUMNS)
        if wins is not None:
            cells += f"<td class=num>{wins.get(label, '&ndash;')}</td>"
        mark = " (submitted)" if label == highlight or (wins or {}).get(label) else ""
        lines.append(f"<tr><td>{_e(label)}{mark}</td>{cells}</tr>")
    return f"<table><tr><th>Setting</th>{head}</tr>\n" + "\n".join(lines) + "</table>"


def _selected(chosen) -> str:
    if not chosen:
        return ""
    lead = (f", {chosen['margin']:.4f} ahead of {_e(chosen['runner_up'])}" if chosen["runner_up"] else
            " (the only candidate)")
    return f"<p>Submitted: {_e(chosen['setting'])}, {_e(chosen['metric'])} = {chosen['value']:.4f}{lead}.</p>"


def plot_overall(scores: dict, path: Path) -> None:
    """Grouped bars: per part (and final) the overall value of every setting; FID scaled as the
    formula uses it, (20 - min(FID, 20)) / 20, so that every bar is in [0, 1] with higher better,
    except LPIPS (lower better)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shown = [c for c in COLUMNS if any(row.get(c) is not None for row in scores["overall"].values())]
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(shown) * max(1, len(scores["overall"])) / 2), 3.5), dpi=100)
    try:
        width = 0.8 / max(1, len(scores["overall"]))
        for i, (label, row) in enumerate(scores["overall"].items()):
            values = [_bar_value(c, row.get(c)) for c in shown]
            ax.bar(np.arange(len(shown)) + i * width, values, width, label=label)
        ax.set_xticks(np.arange(len(shown)) + 0.4 - width / 2, ["fid (scaled)" if c == "fid" else c for c in shown])
        ax.set(ylabel="value", title="Scores per setting, all styles")
        ax.legend(fontsize="small")
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


def _bar_value(column, value):
    if value is None:
        return 0.0
    return (20 - min(value, 20)) / 20 if column == "fid" else value


def _number(value) -> str:
    return "&ndash;" if value is None else f"{value:.4f}"


def _e(text) -> str:
    return html.escape(str(text))
