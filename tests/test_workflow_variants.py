"""Issue 19's generation variants in the workflow: `sweep:` over lora_steps (snapshots of one training),
gen_strength and guidance, each variant a chain of its own whose injections are candidates of `select`.

Dry runs of a fresh copy, then one run of a 2-snapshot sweep on a copy of the demo (`workflow`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from test_workflow import STYLES, commands, copy_workflow, edit_config, inject_settings, pending, snakemake

SNAPSHOTS = {"02": {"sweep": {"lora_steps": [1, 3]}}}  # the demo's own lora_steps is 2 (FAST)
WEIGHTS = "results/02/lora/pytorch_lora_weights.safetensors"


def out_folder(line):
    """The folder of a command's first --out file, under results/."""
    return re.search(r"--out results/(\S+)/[^/\s]+\.png", line)[1]


def by_style(lines, marker):
    """{style or style/variant: command} of commands whose `marker` path names the style."""
    return {line.split(marker)[1].split("/content")[0].split(" ")[0]: line for line in lines}


def test_a_lora_steps_sweep_trains_once_and_runs_a_chain_per_snapshot(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, styles=SNAPSHOTS)
    train = by_style(commands(workdir, "jstyleid train-lora"), "--style-dir data/")
    assert len(train) == 2 and "--snapshot-steps" not in train["01"]
    assert "--train-steps 3 " in train["02"] and "--snapshot-steps 1 2 3 " in train["02"]
    generate = commands(workdir, "jstyleid generate")
    lora = {out_folder(line): line.split("--lora ")[1].split(" ")[0] for line in generate}
    assert lora == {"01/content": "results/01/lora/pytorch_lora_weights.safetensors",
                    "02/content": "results/02/lora/snapshots/step-2/pytorch_lora_weights.safetensors",  # its own step
                    "02/variants/lora1/content": "results/02/lora/snapshots/step-1/pytorch_lora_weights.safetensors",
                    "02/variants/lora3/content": WEIGHTS}
    contents = [line for line in commands(workdir, "jstyleid invert") if "--role content" in line]
    assert len(contents) == 4 and len([line for line in commands(workdir, "jstyleid invert") if "--role style" in line]) == 2
    assert len(commands(workdir, "jstyleid inject")) == 2  # one job per style, the variants' settings in it
    folders = {str(Path(s["out"][0]).parent): str(Path(s.get("content_caches", ["-/-"])[0]).parent)
               for s in inject_settings(workdir, "02")}
    assert folders == {"results/02/styleid": "-",
                       "results/02/sweep/lora1_g0.75_t1.5": "results/02/variants/lora1/cache/content",
                       "results/02/sweep/lora3_g0.75_t1.5": "results/02/variants/lora3/cache/content"}


def test_a_larger_step_resumes_the_same_training(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, styles={"02": {"sweep": {"lora_steps": [1, 3, 5]}}})
    line = by_style(commands(workdir, "jstyleid train-lora"), "--style-dir data/")["02"]
    # the same out-dir, and every earlier snapshot asked for again: train-lora resumes from its checkpoint at 3
    assert "--out-dir results/02/lora " in line and "--train-steps 5 " in line and "--snapshot-steps 1 2 3 5 " in line


def test_guidance_and_strength_variants_reuse_the_lora(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, gen_init="style_mean", sweep={"gen_strength": [0.5, 0.8], "guidance": [5, 7.5]})
    assert not [line for line in commands(workdir, "jstyleid train-lora") if "--snapshot-steps" in line]
    generate = {out_folder(line): line for line in commands(workdir, "jstyleid generate")}
    # one chain per combination; s0.8_cfg7.5 is the style's own (content/)
    assert sorted(generate) == sorted(f"{style}/{folder}" for style in STYLES for folder in
                                      ("content", "variants/s0.5_cfg5/content", "variants/s0.5_cfg7.5/content",
                                       "variants/s0.8_cfg5/content"))
    assert "--guidance 5 " in generate["01/variants/s0.5_cfg5/content"]
    assert "--strength 0.5 " in generate["01/variants/s0.5_cfg5/content"]
    assert "--guidance 7.5 " in generate["01/variants/s0.5_cfg7.5/content"]
    assert "--strength 0.8 " in generate["01/variants/s0.8_cfg5/content"]
    assert all("--lora results/01/lora/pytorch_lora_weights.safetensors " in generate[f"01/{folder}"]
               for folder in ("content", "variants/s0.5_cfg5/content"))


def test_a_strength_sweep_without_an_img2img_start_is_refused(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, sweep={"gen_strength": [0.5]})
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    assert "config sweep.gen_strength (style 01): gen_init is noise, which has no strength" in result.stdout + result.stderr


@pytest.mark.slow
def test_a_snapshot_sweep_runs_end_to_end_and_select_chooses_over_it(workflow):
    edit_config(workflow, select="hist", styles=SNAPSHOTS)
    jobs = pending(workflow)
    variant_jobs = {(rule, "02") for rule in ("generate_variant", "invert_content_variant")}
    assert variant_jobs | {("train_lora", "02"), ("generate", "02"), ("invert_content", "02"), ("inject", "02")} <= jobs
    assert not {("train_lora", "01"), ("invert_style", "02"), ("invert_style", "01")} & jobs  # shared or untouched
    snakemake(workflow, "--cores", "2")
    labels = ["lora1_g0.75_t1.5", "lora3_g0.75_t1.5"]
    for label in labels:
        assert sorted(p.name for p in (workflow / "results/02/sweep" / label).glob("*.png")) == sorted(
            p.name for p in (workflow / "results/02/styleid").glob("*.png"))
    rows = json.loads((workflow / "results/eval/scores.json").read_text())["styles"]["02"]
    assert set(rows) == {"content", "styleid", *labels}
    chosen = json.loads((workflow / "results/submission/mapping.json").read_text())["selection"]["02"]
    candidates = {label: row["hist"] for label, row in rows.items() if label != "content"}
    assert chosen["setting"] == max(candidates, key=candidates.get)
    page = (workflow / "results/report/style-02.html").read_text()
    steps = re.findall(r"<tr[^>]*><td class=num>(\d+)</td>", page.split("<h3>LoRA snapshots</h3>")[1].split("</table>")[0])
    assert steps == ["1", "2", "3"]  # each snapshot's row, the style's own step 2 among them
    kind = "default" if chosen["setting"] == "styleid" else "snapshot"
    won = re.search(rf"<tr><td>{kind}</td><td class=num>\d+</td><td>([^<]*)</td>",
                    (workflow / "results/report/index.html").read_text())
    assert "02" in won[1].split(", ")  # the index's summary of which kind of candidate won

    edit_config(workflow, select="hist", styles={"02": {"sweep": {"lora_steps": [1, 3], "guidance": [5]},
                                                        "gen_init": "style_mean"}})
    assert ("train_lora", "02") not in pending(workflow)  # a new generation setting does not retrain

    edit_config(workflow, select="hist", styles={"02": {"sweep": {"lora_steps": [1, 3, 4]}}})
    snakemake(workflow, "--cores", "1", "--until", "train_lora")
    assert "resumed at step 3 of 4" in (workflow / "results/logs/train_lora/02.log").read_text()
