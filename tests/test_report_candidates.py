"""Issue 19, item 5: the report's view of a whole-chain sweep. Each style's page: a table and a chart of
every candidate's score with the submitted one marked, and per LoRA snapshot its validation images beside
its best candidate; the index: which kind of candidate won where."""

from __future__ import annotations

import json
import re

import numpy as np
from PIL import Image

from jstyleid.cli import main
from jstyleid.evaluation.select import choose, choose_per_prompt
from test_select_per_prompt import LABELS, PROMPTS, synthetic

KINDS = {"g0.25_t1.5": None, "lora2_g0.5_t1.5": "snapshot"}  # None: an injection setting (no kind in the manifest)
SNAPSHOTS = [dict(step=2, settings=["lora2_g0.5_t1.5"]), dict(step=4, settings=["styleid", "g0.25_t1.5"])]


def picture(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
    return str(path)


def build(tmp_path):
    """Styles 05 (select final, per style) and 06 (select hist, per prompt), each with the synthetic sweep of
    test_select_per_prompt; 05's LoRA validated at steps 0, 2 and 4."""
    scores = dict(metrics={}, styles={})
    styles = []
    for seed, name in enumerate(("05", "06")):
        root = tmp_path / name
        one = synthetic(root, seed=seed)
        scores["metrics"] = {part: dict(status, weights="random") for part, status in one["metrics"].items()}
        scores["styles"][name] = one["styles"]["05"]
        for row in scores["styles"][name].values():
            row["images"] = len(PROMPTS)
        root.mkdir()
        (root / "prompt.json").write_text(json.dumps({str(i): p for i, p in enumerate(PROMPTS)}))
        for k, label in enumerate(("content", *LABELS)):
            for prompt in PROMPTS:
                picture(root / label / f"{prompt}.png", seed=10 * k + len(prompt))
        styles.append(dict(name=name, prompts=str(root / "prompt.json"), refs=[picture(root / "ref.png", 1)],
                           contents=[str(root / "content" / f"{p}.png") for p in PROMPTS],
                           outputs=str(root / "styleid"), loss=None,
                           sweep=[dict(gamma=0.25, temperature=1.5, outputs=str(root / label),
                                       **({"kind": kind, "variant": label.split("_")[0]} if kind else {}))
                                  for label, kind in KINDS.items()]))
    lora = tmp_path / "05/lora"
    for step in (0, 2, 4):
        picture(lora / "validation" / f"step{step:06d}" / "a house.png", seed=step)
    (lora / "validation/strips.json").write_text(json.dumps(dict(prompts=["a house"], steps=[0, 2, 4])))
    styles[0].update(validation=str(lora), snapshots=SNAPSHOTS)
    scores["overall"] = {label: {k: v for k, v in row.items() if k != "per_image"}  # style 05's, as a stand-in
                         for label, row in scores["styles"]["05"].items()}
    (tmp_path / "scores.json").write_text(json.dumps(scores))
    evaluation = dict(scores=str(tmp_path / "scores.json"), select={"05": "final", "06": "hist"}, per_prompt=["06"])
    manifest = dict(styles=styles, benchmarks=[], config={"model": "builtin:tiny"}, evaluation=evaluation)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "report/index.html"
    assert main(["report", "--manifest", str(tmp_path / "manifest.json"), "--out", str(out)]) == 0
    return scores, out


def rows_of(page, heading):
    """The cells of each row of the table after `heading`, tags removed."""
    table = page.split(heading, 1)[1].split("</table>", 1)[0]
    return [[re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table) if "<td" in row]


def kind(label):
    return "default" if label == "styleid" else KINDS[label] or "injection"


def test_each_style_page_has_every_candidates_score_and_the_submitted_one_marked(tmp_path):
    scores, out = build(tmp_path)
    winner = choose(scores, "final", "05")["setting"]
    page = (out.parent / "style-05.html").read_text()
    table = {row[0]: row[1:] for row in rows_of(page, "<h3>Scores</h3>")}
    assert set(table) == {"content", *(f"{label} (submitted)" if label == winner else label for label in LABELS)}
    assert table[f"{winner} (submitted)"][-1] == f"{scores['styles']['05'][winner]['final']:.4f}"
    assert f"<tr class=won><td>{winner} (submitted)</td>" in page  # highlighted
    with Image.open(out.parent / "img/scores-05.png") as chart:  # the chart beside it: one row per candidate
        assert chart.height > 100 and 'src="img/scores-05.png"' in page
    wins = choose_per_prompt(scores, "hist", "06")["wins"]
    per_prompt = {row[0].removesuffix(" (submitted)"): row[-1] for row in rows_of(
        (out.parent / "style-06.html").read_text(), "<h3>Scores</h3>")}
    assert {label: int(per_prompt[label]) for label in LABELS} == wins
    index = {row[0]: row[1:] for row in rows_of(out.read_text(), "<h2>Styles</h2>")}
    most = max(wins, key=wins.get)
    others = sum(1 for count in wins.values() if count) - 1
    assert index["Style 06"][:3] == [f"per prompt: {most}" + (f" and {others} more" if others else ""), "",
                                     "hist per prompt"]
    assert index["Style 05"][0] == winner
    assert "<h3>Style 05</h3>" not in out.read_text()  # the tables live on the style pages


def test_each_snapshot_shows_its_validation_images_beside_its_best_candidate(tmp_path):
    scores, out = build(tmp_path)
    rows = scores["styles"]["05"]
    winner = choose(scores, "final", "05")["setting"]
    page = (out.parent / "style-05.html").read_text()
    table = rows_of(page, "<h3>LoRA snapshots</h3>")
    assert [row[0] for row in table] == ["2", "4"]
    for row, snapshot in zip(table, SNAPSHOTS):
        best = max(snapshot["settings"], key=lambda label: rows[label]["final"])
        submitted = " (submitted)" if winner in snapshot["settings"] else ""
        assert row[2:] == [str(len(snapshot["settings"])), best + submitted, f"{rows[best]['final']:.4f}"]
    assert "<th>gamma 0.25, T 1.5</th><th>lora2: gamma 0.25, T 1.5</th>" in page  # the sweep grid names the variant
    strip = page.split("<h3>LoRA snapshots</h3>", 1)[1].split("</table>", 1)[0]
    assert strip.count("<img ") == 2  # the validation prompt at steps 2 and 4, not step 0


def test_the_index_says_which_kind_of_candidate_won_where(tmp_path):
    scores, out = build(tmp_path)
    won = {row[0]: row[1:] for row in rows_of(out.read_text(), "<h3>Which kind of candidate won</h3>")}
    expected = {}
    per_style = kind(choose(scores, "final", "05")["setting"])
    expected.setdefault(per_style, [[], 0])
    expected[per_style][0].append("05")
    expected[per_style][1] += len(PROMPTS)
    by_kind = {}
    for label, count in choose_per_prompt(scores, "hist", "06")["wins"].items():
        by_kind[kind(label)] = by_kind.get(kind(label), 0) + count
    for name, count in by_kind.items():
        if count:
            expected.setdefault(name, [[], 0])
            expected[name][0].append(f"06 ({count} of {len(PROMPTS)} prompts)")
            expected[name][1] += count
    assert won == {name: [str(len(styles)), ", ".join(styles), str(prompts)]
                   for name, (styles, prompts) in expected.items()}


def test_the_chart_shades_each_column_from_the_worst_candidate_to_the_best():
    from jstyleid.evaluation.report import COLUMNS, shades

    rows = {"content": dict(hist=0.9, lpips=0.1), "styleid": dict(hist=0.2, lpips=0.5),
            "a": dict(hist=0.4, lpips=0.3), "b": dict(hist=0.3, lpips=0.4, fid=3.0)}
    values, shade = shades(rows)
    hist, lpips, fid = (COLUMNS.index(c) for c in ("hist", "lpips", "fid"))
    assert np.allclose(shade[:, hist], [0, 0, 1, 0.5])  # content left out, a the best
    assert np.allclose(shade[:, lpips], [0, 0, 1, 0.5])  # lower is better
    assert list(shade[:, fid]) == [0.0] * 4 and np.isnan(values[0, fid])  # one value: no spread
