"""The report's sections on scores. The index: which parts ran (with what weights), an overall table
and bar chart per setting, and which kind of candidate won where. Each style's page: a table and a
chart of every candidate's score, the submitted one marked, and the score of each LoRA snapshot."""

from __future__ import annotations

import html
import json
from pathlib import Path

from ..errors import InputError
from ..storage.fileio import atomic_path
from .score import FINAL, LOWER_IS_BETTER, PARTS
from .select import CONTENT, DEFAULT, choose, choose_per_prompt

COLUMNS = (*PARTS, FINAL)
# What a candidate varies (the report manifest's sweep "kind"): the default output, an injection setting, a
# LoRA snapshot, a generation setting (gen_strength, guidance), or a snapshot with another generation setting.
KINDS = ("default", "injection", "snapshot", "generation", "snapshot+generation")


def read_scores(evaluation: dict) -> dict:
    try:
        return json.loads(Path(evaluation["scores"]).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(evaluation["scores"], f"cannot read the scores ({err})") from None


def section(evaluation: dict, out_dir: Path, kinds: dict | None = None, scores: dict | None = None) -> str:
    """HTML of the index's section; the chart is written to out_dir/scores.png. `kinds`: {style: {setting:
    kind}} of the sweep settings (a setting not in it is an injection setting)."""
    scores = scores or read_scores(evaluation)
    plot_overall(scores, out_dir / "scores.png")
    parts = "".join(f"<li>{_e(p)}: {_e(s.get('weights') or 'unavailable: ' + s['reason'])}</li>"
                    for p, s in scores["metrics"].items())
    body = [f"<h2>Scores</h2>\n<p>{_e(scores.get('numbers', ''))} Lower is better for lpips and fid; "
            f"final only when all six parts are present. Each style's page has its table.</p><ul>{parts}</ul>",
            "<h3>All styles</h3>", _table(scores["overall"]),
            '<p><img class="loss" src="scores.png" alt="scores per setting"></p>']
    return "\n".join(body + [_won_by_kind(scores, evaluation, kinds or {})])


def submitted(scores: dict, evaluation: dict, style: str) -> dict:
    """{"chosen": choose()'s answer or None, "wins": {setting: prompts won} with a per-prompt choice}."""
    metric = evaluation["select"].get(style)
    if not metric:
        return dict(chosen=None, wins=None)
    if style in evaluation.get("per_prompt", ()):
        return dict(chosen=None, wins=choose_per_prompt(scores, metric, style, where=evaluation["scores"])["wins"])
    return dict(chosen=choose(scores, metric, style, where=evaluation["scores"]), wins=None)


def _kind(kinds: dict, style: str, label: str) -> str:
    return "default" if label == DEFAULT else kinds.get(style, {}).get(label, "injection")


def _won_by_kind(scores, evaluation, kinds) -> str:
    """Per kind of candidate, the styles where it won and how many submitted prompts it gave."""
    won = {kind: dict(styles=[], prompts=0) for kind in KINDS}
    for style, rows in scores["styles"].items():
        choice = submitted(scores, evaluation, style)
        if choice["chosen"]:
            kind = _kind(kinds, style, choice["chosen"]["setting"])
            won[kind]["styles"].append(style)
            won[kind]["prompts"] += rows[choice["chosen"]["setting"]]["images"]
        elif choice["wins"]:
            total, by_kind = sum(choice["wins"].values()), {}
            for label, count in choice["wins"].items():
                by_kind[_kind(kinds, style, label)] = by_kind.get(_kind(kinds, style, label), 0) + count
            for k, count in by_kind.items():
                if count:
                    won[k]["styles"].append(f"{style} ({count} of {total} prompts)")
                    won[k]["prompts"] += count
    if not any(entry["styles"] for entry in won.values()):
        return ""  # no style selects
    lines = "\n".join(f"<tr><td>{_e(kind)}</td><td class=num>{len(entry['styles'])}</td><td>{_e(', '.join(entry['styles']))}"
                      f"</td><td class=num>{entry['prompts']}</td></tr>" for kind, entry in won.items() if entry["styles"])
    return ("<h3>Which kind of candidate won</h3>\n<table><tr><th>Kind</th><th>Styles</th><th>Which</th>"
            f"<th>Prompts submitted</th></tr>\n{lines}</table><p>default: the style's own setting; injection: "
            "another injection setting; snapshot: content from another LoRA step; generation: another "
            "gen_strength or guidance.</p>")


def style_section(evaluation: dict, style: str, out_dir: Path, scores: dict) -> str:
    """HTML of a style page's scores: the table and chart of its candidates (the chart written to
    out_dir/img/scores-<style>.png), the submitted one marked."""
    from ..storage.inputs import safe_filename

    rows = scores["styles"].get(style)
    if rows is None:
        return ""
    choice = submitted(scores, evaluation, style)
    chosen, wins = choice["chosen"], choice["wins"]
    chart = f"img/scores-{safe_filename(style)}.png"
    plot_style(rows, out_dir / chart, chosen and chosen["setting"], title=f"Style {style}: every candidate")
    if wins is not None:
        note = (f"<p>Submitted per prompt by {_e(evaluation['select'][style])}: each prompt's image from the setting "
                "that scores best on it (the prompts each setting won: last column).</p>")
    else:
        note = _selected(chosen)
    return ("\n<h3>Scores</h3>\n" + _table(rows, chosen and chosen["setting"], wins) + note
            + f'\n<p><img class="chart" src="{chart}" alt="every candidate\'s score" loading="lazy"></p>')


def snapshot_scores(evaluation: dict | None, scores: dict | None, style: str, snapshots: list) -> tuple[str, list]:
    """(metric, per snapshot {"label", "value", "submitted"}): the best of each snapshot's settings by the
    style's `select` metric, else final (label None without a score), and whether the submission takes from it."""
    metric = (evaluation or {}).get("select", {}).get(style) or FINAL
    rows = (scores or {}).get("styles", {}).get(style, {})
    choice = submitted(scores, evaluation, style) if evaluation else dict(chosen=None, wins=None)
    won = {choice["chosen"]["setting"]} if choice["chosen"] else {k for k, n in (choice["wins"] or {}).items() if n}
    best = []
    for snapshot in snapshots:
        scored = [(label, rows[label][metric]) for label in snapshot["settings"]
                  if rows.get(label, {}).get(metric) is not None]
        label, value = (min if metric in LOWER_IS_BETTER else max)(scored, key=lambda item: item[1]) if scored else (None, None)
        best.append(dict(label=label, value=value, submitted=bool(won & set(snapshot["settings"]))))
    return metric, best


def _table(rows: dict, highlight=None, wins=None) -> str:
    """Rows: settings; columns: the parts and final; the submitted setting marked, or with a per-prompt
    choice the number of prompts each setting won."""
    head = "".join(f"<th>{_e(c)}</th>" for c in COLUMNS) + ("<th>prompts won</th>" if wins is not None else "")
    lines = []
    for label, row in rows.items():
        cells = "".join(f"<td class=num>{_number(row.get(c))}</td>" for c in COLUMNS)
        if wins is not None:
            cells += f"<td class=num>{wins.get(label, '&ndash;')}</td>"
        won = label == highlight or (wins or {}).get(label)
        lines.append(f"<tr{' class=won' if won else ''}><td>{_e(label)}{' (submitted)' if won else ''}</td>{cells}</tr>")
    return f"<table><tr><th>Setting</th>{head}</tr>\n" + "\n".join(lines) + "</table>"


def _selected(chosen) -> str:
    if not chosen:
        return ""
    lead = (f", {chosen['margin']:.4f} ahead of {_e(chosen['runner_up'])}" if chosen["runner_up"] else
            " (the only candidate)")
    return f"<p>Submitted: {_e(chosen['setting'])}, {_e(chosen['metric'])} = {chosen['value']:.4f}{lead}.</p>"


def shades(rows: dict):
    """(values, shades) of plot_style, rows x COLUMNS: the values (NaN where missing), and per column
    0 for the worst candidate to 1 for the best (0 for the content row, a missing value, a column without spread)."""
    import numpy as np

    values = np.array([[np.nan if row.get(c) is None else row[c] for c in COLUMNS] for row in rows.values()], float)
    shade = np.zeros_like(values)
    candidates = np.array([label != CONTENT for label in rows])
    for j, column in enumerate(COLUMNS):
        good = -values[:, j] if column in LOWER_IS_BETTER else values[:, j]
        low, high = np.nanmin(good[candidates], initial=np.inf), np.nanmax(good[candidates], initial=-np.inf)
        shade[:, j] = (good - low) / (high - low) if high > low else 0.0
    shade[np.isnan(values) | ~candidates[:, None]] = 0.0
    return values, shade


def plot_style(rows: dict, path: Path, highlight=None, title="") -> None:
    """A heat map, rows: candidates, columns: the parts and final, each cell its value; the colour places
    each candidate between the worst and the best of that column (darker is better, whichever way the
    part counts). The content images are a row to compare with, not a candidate: they are left pale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(rows)
    values, shade = shades(rows)
    fig, ax = plt.subplots(figsize=(1.0 * len(COLUMNS) + 2.5, 0.32 * len(labels) + 1.2), dpi=100)
    try:
        ax.imshow(shade, cmap="Greens", vmin=-0.15, vmax=1.15, aspect="auto")
        for i, j in np.ndindex(values.shape):
            text = "-" if np.isnan(values[i, j]) else f"{values[i, j]:.4f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if shade[i, j] > 0.6 else "black")
        ax.set_xticks(range(len(COLUMNS)), [f"{c} (lower better)" if c in LOWER_IS_BETTER else c for c in COLUMNS],
                      fontsize=7, rotation=20)
        ax.set_yticks(range(len(labels)), [f"{label} (submitted)" if label == highlight else label for label in labels],
                      fontsize=7)
        for tick, label in zip(ax.get_yticklabels(), labels):
            tick.set_fontweight("bold" if label == highlight else "normal")
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)


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
