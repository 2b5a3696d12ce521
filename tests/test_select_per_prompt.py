"""select_per: prompt: each prompt's submitted image from the setting that scores best on it."""

from __future__ import annotations

import json

import pytest

from jstyleid import workflow as wf
from jstyleid.errors import InputError
from jstyleid.evaluation.score import PARTS, final_score
from jstyleid.evaluation.select import choose_per_prompt

PROMPTS = ("Ring", "Moon", "Ship")
LABELS = ("styleid", "g0.25_t1.5", "lora2_g0.5_t1.5")
PER_IMAGE = ("hist", "dino", "lpips", "clip_iqa", "clip_r")


def synthetic(folder, seed=0):
    """scores.json of one style: every setting's per-image parts drawn at random; on Moon's Hist the default
    output ties with g0.25_t1.5, ahead of the third."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = {}
    for label in ("content", *LABELS):
        per_image = {part: {f"{folder}/{label}/{p}.png": float(rng.uniform(0.1, 0.9)) for p in PROMPTS}
                     for part in PER_IMAGE}
        rows[label] = dict(outputs=f"{folder}/{label}", fid=float(rng.uniform(2, 25)), per_image=per_image,
                           **{part: float(np.mean(list(per_image[part].values()))) for part in PER_IMAGE})
        rows[label]["final"] = final_score(rows[label])
    tie = rows["styleid"]["per_image"]["hist"][f"{folder}/styleid/Moon.png"]
    rows["g0.25_t1.5"]["per_image"]["hist"][f"{folder}/g0.25_t1.5/Moon.png"] = tie
    rows["lora2_g0.5_t1.5"]["per_image"]["hist"][f"{folder}/lora2_g0.5_t1.5/Moon.png"] = tie / 2
    rows["content"]["per_image"]["hist"][f"{folder}/content/Moon.png"] = 1.0  # content is never a candidate
    return dict(metrics={p: {"status": "ok"} for p in PARTS}, styles={"05": rows})


def value(scores, label, prompt, metric):
    row = scores["styles"]["05"][label]
    mine = {part: values[f"{row['outputs']}/{prompt}.png"] for part, values in row["per_image"].items()}
    return final_score({**mine, "fid": row["fid"]}) if metric == "final" else mine[metric]


@pytest.mark.parametrize("metric", ["hist", "lpips", "clip_r", "final"])
def test_each_prompt_gets_the_setting_best_on_it(tmp_path, metric):
    scores = synthetic(tmp_path)
    chosen = choose_per_prompt(scores, metric, "05")
    pick = min if metric == "lpips" else max
    for prompt in PROMPTS:
        values = {label: value(scores, label, prompt, metric) for label in LABELS}
        best = pick(values.values())
        expected = next(label for label in LABELS if values[label] == best)  # ties: styleid, then label order
        assert chosen["prompts"][prompt]["setting"] == expected, (prompt, values)
        assert chosen["prompts"][prompt]["value"] == best
    assert sum(chosen["wins"].values()) == len(PROMPTS)


def test_a_tie_goes_to_the_default_output(tmp_path):
    scores = synthetic(tmp_path)
    moon = {label: value(scores, label, "Moon", "hist") for label in LABELS}
    assert moon["styleid"] == moon["g0.25_t1.5"] > moon["lora2_g0.5_t1.5"]
    assert choose_per_prompt(scores, "hist", "05")["prompts"]["Moon"]["setting"] == "styleid"


def test_fid_and_missing_per_image_values_are_refused_in_one_line(tmp_path):
    scores = synthetic(tmp_path)
    with pytest.raises(InputError, match="fid has no per-image values"):
        choose_per_prompt(scores, "fid", "05")
    del scores["styles"]["05"]["g0.25_t1.5"]["per_image"]["dino"]
    with pytest.raises(InputError, match="setting g0.25_t1.5 has no per-image dino values"):
        choose_per_prompt(scores, "final", "05")


def test_the_submission_takes_each_prompts_winner_and_names_it(tmp_path):
    from PIL import Image

    from jstyleid.cli import main

    (tmp_path / "data/05").mkdir(parents=True)
    (tmp_path / "data/05/prompt.json").write_text(json.dumps({str(i): p for i, p in enumerate(PROMPTS)}))
    for i, label in enumerate(("content", *LABELS)):
        (tmp_path / label).mkdir()
        for k, prompt in enumerate(PROMPTS):
            Image.new("RGB", (8, 8), (i * 40, k * 40, 0)).save(tmp_path / label / f"{prompt}.png")
    scores = synthetic(tmp_path)
    (tmp_path / "scores.json").write_text(json.dumps(scores))
    out = tmp_path / "sub"
    assert main(["submission", "--prompts", str(tmp_path / "data/05/prompt.json"), "--image-dirs",
                 str(tmp_path / "styleid"), "--out-dir", str(out), "--scores", str(tmp_path / "scores.json"),
                 "--select", "dino", "--select-per", "prompt"]) == 0
    chosen = choose_per_prompt(scores, "dino", "05")
    mapping = json.loads((out / "mapping.json").read_text())
    for prompt in PROMPTS:
        winner = chosen["prompts"][prompt]["setting"]
        assert (out / "05" / f"{prompt}.png").read_bytes() == (tmp_path / winner / f"{prompt}.png").read_bytes()
        assert mapping["selection"]["05"]["prompts"][prompt]["setting"] == winner
    assert mapping["selection"]["05"]["wins"] == chosen["wins"]


@pytest.mark.parametrize("config, line", [
    (dict(select_per="prompt"), "config select_per: prompt needs a per-image score in select (style 01 has none"),
    (dict(select="fid", styles={"02": {"select_per": "prompt"}}), "config styles 02 select_per: prompt needs"),
])
def test_a_per_prompt_choice_without_a_per_image_score_is_refused_before_any_job(config, line):
    settings = {"select": "none", "select_per": "style", "styles": {}, **config}
    with pytest.raises(InputError) as refusal:
        wf.check_selection(settings, ["01", "02"])
    assert str(refusal.value).startswith(line) and "\n" not in str(refusal.value)
    wf.check_selection(dict(settings, select="hist"), ["01", "02"])
