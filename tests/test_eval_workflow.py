"""Selection by score, and what the `evaluate`/`select` settings make the workflow (re)run."""

from __future__ import annotations

import json

import pytest
import yaml

from jstyleid.errors import InputError
from jstyleid.evaluation.select import choose
from jstyleid.storage.store import reuse_counts
from conftest import SWEEP_GAMMAS, copy_run
from test_workflow import ROOT, copy_workflow, edit_config, pending, snakemake

UNAVAILABLE = {"status": "unavailable", "reason": "no weights"}


def synthetic_scores(folders):
    """Scores of one style's content, default output and three sweep settings."""
    rows = {"content": dict(hist=0.99, lpips=0.1), "styleid": dict(hist=0.40, lpips=0.5),
            "g0.25_t1.5": dict(hist=0.62, lpips=0.3), "g0.5_t1.5": dict(hist=0.55, lpips=0.2),
            "g0.75_t2": dict(hist=0.10, lpips=0.6)}
    metrics = {p: UNAVAILABLE for p in ("dino", "fid", "clip_iqa", "clip_r")}
    return dict(metrics={**metrics, "hist": {"status": "ok"}, "lpips": {"status": "ok"}},
                styles={"05": {label: dict(row, outputs=str(folders[label])) for label, row in rows.items()}})


def test_selection_picks_the_best_stylised_setting(tmp_path):
    scores = synthetic_scores({label: tmp_path / label for label in
                               ("content", "styleid", "g0.25_t1.5", "g0.5_t1.5", "g0.75_t2")})
    best = choose(scores, "hist", "05")  # content (0.99) is not a candidate
    assert (best["setting"], best["runner_up"]) == ("g0.25_t1.5", "g0.5_t1.5")
    assert best["margin"] == pytest.approx(0.07) and best["outputs"] == str(tmp_path / "g0.25_t1.5")
    assert choose(scores, "lpips", "05")["setting"] == "g0.5_t1.5"  # lower is better
    with pytest.raises(InputError, match="select: final is unavailable"):
        choose(scores, "final", "05")
    with pytest.raises(InputError, match="dino is unavailable"):
        choose(scores, "dino", "05")


def test_submission_takes_the_selected_setting(tmp_path):
    from PIL import Image

    from jstyleid.cli import main

    (tmp_path / "data/05").mkdir(parents=True)
    (tmp_path / "data/05/prompt.json").write_text(json.dumps({"0": "Ring"}))
    folders = {}
    for i, label in enumerate(("content", "styleid", "g0.25_t1.5", "g0.5_t1.5", "g0.75_t2")):
        folders[label] = tmp_path / label
        folders[label].mkdir()
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(folders[label] / "Ring.png")
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps(synthetic_scores(folders)))
    out = tmp_path / "sub"
    assert main(["submission", "--prompts", str(tmp_path / "data/05/prompt.json"), "--image-dirs",
                 str(folders["styleid"]), "--out-dir", str(out), "--scores", str(scores), "--select", "hist"]) == 0
    assert (out / "05/Ring.png").read_bytes() == (folders["g0.25_t1.5"] / "Ring.png").read_bytes()
    mapping = json.loads((out / "mapping.json").read_text())
    assert mapping["selection"]["05"]["setting"] == "g0.25_t1.5" and mapping["05"][0]["file"] == "05/Ring.png"
    assert mapping["selection"]["05"]["margin"] == pytest.approx(0.07)


def test_the_demo_evaluates_and_evaluate_false_turns_it_off(tmp_path):
    assert yaml.safe_load((ROOT / "config.yaml").read_text())["evaluation"]["enabled"] is True  # make run shows its scores
    workdir = copy_workflow(tmp_path / "wf")  # the tests' FAST settings turn it off
    assert not any(rule == "evaluate" for rule, _ in pending(workdir))
    edit_config(workdir, evaluation={"enabled": True})
    assert ("evaluate", "*") in pending(workdir)


@pytest.mark.slow
def test_select_reruns_only_evaluation_submission_and_report(swept, tmp_path):
    workflow = copy_run(swept, tmp_path / "wf")  # the session's gamma-sweep run (tests/conftest.py), no evaluation
    edit_config(workflow, select="hist")
    assert pending(workflow) == {("evaluate", "*"), ("submission", "*"), ("report", "*")}
    snakemake(workflow, "--cores", "2")
    scores = json.loads((workflow / "results/eval/scores.json").read_text())
    mapping = json.loads((workflow / "results/submission/mapping.json").read_text())
    for style in ("01", "02"):
        rows = {k: v for k, v in scores["styles"][style].items() if k != "content"}
        assert set(rows) == {"styleid", "g0.25_t1.5", "g0.5_t1.5"}
        assert mapping["selection"][style]["setting"] == max(rows, key=lambda k: rows[k]["hist"])
    assert scores["metrics"]["hist"]["status"] == "ok" and scores["overall"]["styleid"]["final"] is None
    html = (workflow / "results/report/index.html").read_text()
    assert "<h2>Scores</h2>" in html and (workflow / "results/report/scores.png").is_file()
    assert "<h3>Which kind of candidate won</h3>" in html
    assert "(submitted)" in (workflow / "results/report/style-01.html").read_text()  # the style's own table
    edit_config(workflow, select_per="prompt")  # each prompt from its best setting: only the submission changes
    assert pending(workflow) == {("submission", "*"), ("report", "*")}
    snakemake(workflow, "--cores", "2")
    by_prompt = json.loads((workflow / "results/submission/mapping.json").read_text())["selection"]
    for style in ("01", "02"):
        for prompt, won in by_prompt[style]["prompts"].items():
            rows = {k: v["per_image"]["hist"] for k, v in scores["styles"][style].items() if k != "content"}
            best = max(next(x for image, x in row.items() if image.endswith(f"/{prompt}.png")) for row in rows.values())
            assert won["value"] == best
    page = (workflow / "results/report/style-02.html").read_text()
    assert "<th>prompts won</th>" in page and "Submitted per prompt by hist" in page
    edit_config(workflow, select_per="style")
    edit_config(workflow, styles={"02": {"select": "none"}})  # one style back to the default output
    assert pending(workflow) == {("submission", "*"), ("report", "*")}
    edit_config(workflow, select="none", styles={})
    assert pending(workflow) == {("submission", "*"), ("report", "*")}

    # One more gamma (not the default 0.75, whose pictures the store holds): each style's inject job computes only the new setting's pictures (the others come
    # from the store), and evaluation scores only those.
    edit_config(workflow, select="hist", sweep={"gamma": SWEEP_GAMMAS + [0.9], "temperature": []})
    snakemake(workflow, "--cores", "2")
    prompts = {style: scores["styles"][style]["styleid"]["images"] for style in ("01", "02")}
    for style, count in prompts.items():
        assert reuse_counts(workflow / f"results/logs/inject/{style}.log") == (count * (1 + len(SWEEP_GAMMAS)), count)
    # Hist (the part these tests have weights for): content, styleid and the old gammas from the store
    assert reuse_counts(workflow / "results/logs/evaluate.log") == (
        sum(prompts.values()) * (2 + len(SWEEP_GAMMAS)), sum(prompts.values()))
    grown = json.loads((workflow / "results/eval/scores.json").read_text())
    assert grown["styles"]["01"]["g0.25_t1.5"] == scores["styles"]["01"]["g0.25_t1.5"]
    assert grown["styles"]["01"]["g0.9_t1.5"]["hist"] is not None


def test_submission_refuses_a_selection_it_cannot_make(tmp_path, capsys):
    from jstyleid.cli import main

    (tmp_path / "data/05").mkdir(parents=True)
    prompts = tmp_path / "data/05/prompt.json"
    prompts.write_text(json.dumps({"0": "Ring"}))
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps(synthetic_scores({label: tmp_path for label in
                                                   ("content", "styleid", "g0.25_t1.5", "g0.5_t1.5", "g0.75_t2")})))
    base = ["submission", "--prompts", str(prompts), "--image-dirs", str(tmp_path), "--out-dir", str(tmp_path / "sub")]
    assert main(base + ["--select", "hist"]) == 2
    assert "--select: needs --scores" in capsys.readouterr().err
    assert main(base + ["--scores", str(scores), "--select", "clip_r"]) == 2
    assert f"{scores}: select: clip_r is unavailable (no weights)" in capsys.readouterr().err
    assert not (tmp_path / "sub").exists()
