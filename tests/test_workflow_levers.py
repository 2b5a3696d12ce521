"""Issue 11's levers in the workflow: what each setting reruns, and the commands it gives.

Uses the helpers of tests/test_workflow.py and the `workflow` fixture of tests/conftest.py (each test works on a copy).
"""

from __future__ import annotations


import pytest

from test_workflow import (AFTER_INJECT, assert_config_refused, chain, commands, copy_workflow, edit_config,  # noqa: F401
                           inject_settings, pending, setting_folders, snakemake)


NEW_FLAGS = ("--layers", "--refs-mode", "--init-image", "--init-mean", "--strength", "--candidates", "--snapshot-steps")


@pytest.mark.slow
def test_a_subset_of_the_spec_layers_reruns_only_injection(workflow):
    edit_config(workflow, layers="sd21_7to11")
    assert pending(workflow) == chain("01", "inject") | chain("02", "inject") | AFTER_INJECT


@pytest.mark.slow
def test_a_layer_outside_the_spec_six_reruns_that_styles_inversions(workflow):
    extra = "up_blocks.1.attentions.0.transformer_blocks.0.attn1"
    edit_config(workflow, styles={"02": {"layers": ["spec6", extra]}})
    assert pending(workflow) == chain("02", "invert_style", "invert_content", "inject") | AFTER_INJECT
    inversions = [line for line in commands(workflow, "jstyleid invert") if "data/02/" in line or "results/02/" in line]
    assert len(inversions) == 2 and all(f"{extra} up_blocks.2.attentions.0" in line for line in inversions)


@pytest.mark.slow
def test_rotating_references_reruns_only_that_styles_injection(workflow):
    edit_config(workflow, styles={"01": {"style_refs_mode": "rotate"}})
    assert pending(workflow) == chain("01", "inject") | AFTER_INJECT
    [own] = inject_settings(workflow, "01")
    assert own["refs_mode"] == "rotate" and own["out"][0].startswith("results/01/styleid/")
    assert [s["refs_mode"] for s in inject_settings(workflow, "02")] == ["pool"]


@pytest.mark.slow
def test_a_sweep_over_layers_and_reference_mode_reuses_the_caches(workflow):
    edit_config(workflow, sweep={"gamma": [0.5], "layers": ["spec6", "sd21_7to11"], "style_refs_mode": ["rotate"]})
    assert pending(workflow) == chain("01", "inject") | chain("02", "inject") | AFTER_INJECT  # one job per style
    own, *swept = inject_settings(workflow, "01")
    sweeps = {folder.split("/sweep/")[1]: s for folder, s in zip(setting_folders(swept), swept)}
    assert sorted(sweeps) == ["g0.5_t1.5_sd21_7to11_rotate", "g0.5_t1.5_spec6_rotate"]
    assert sweeps["g0.5_t1.5_sd21_7to11_rotate"]["layers"][0].startswith("up_blocks.2.attentions.1")
    assert len(sweeps["g0.5_t1.5_spec6_rotate"]["layers"]) == 6 == len(own["layers"])
    assert all(s["refs_mode"] == "rotate" and s["gamma"] == 0.5 for s in sweeps.values()) and own["refs_mode"] == "pool"


@pytest.mark.slow
def test_img2img_start_reruns_that_styles_generation_and_what_follows(workflow):
    edit_config(workflow, gen_strength=0.5)  # without an init image it changes no picture (the report shows the config)
    assert pending(workflow) == {("report", "*")}
    edit_config(workflow, styles={"01": {"gen_init": "style_mean"}})
    assert pending(workflow) == chain("01", "generate", "invert_content", "inject") | AFTER_INJECT
    [line] = commands(workflow, "jstyleid generate")
    assert "--init-mean data/01/images/stripes_0.png data/01/images/stripes_1.png data/01/images/stripes_2.png" \
           " --strength 0.5 " in line


@pytest.mark.slow
def test_candidates_rerun_that_styles_generation_and_what_follows(workflow):
    edit_config(workflow, gen_candidates_metric="dino")  # one candidate: no metric is used, no picture changes
    assert pending(workflow) == {("report", "*")}
    edit_config(workflow, gen_candidates_metric="hist", styles={"02": {"gen_candidates": 2}})
    assert pending(workflow) == chain("02", "generate", "invert_content", "inject") | AFTER_INJECT
    [line] = commands(workflow, "jstyleid generate")
    assert "--candidates 2 --candidates-metric hist --references data/02/images/dots_0.png" in line


# Dry runs of a fresh copy.

def test_defaults_add_no_option_to_any_command(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    lines = commands(workdir, "jstyleid")
    assert len(lines) == 13  # make-model, 5 per style, submission, report
    assert not [line for line in lines if any(flag in line for flag in NEW_FLAGS)]


def test_init_folder_gives_one_image_per_prompt(tmp_path):
    import shutil

    workdir = copy_workflow(tmp_path / "wf")
    for name in ["Cat", "Lighthouse", "Tree"]:
        (workdir / "starts/02").mkdir(parents=True, exist_ok=True)
        shutil.copy(workdir / "data/02/images/dots_1.png", workdir / f"starts/02/{name}.png")
    edit_config(workdir, styles={"02": {"gen_init": "starts/{style}", "gen_strength": 0.9}})
    lines = {line.split("--lora results/")[1][:2]: line for line in commands(workdir, "jstyleid generate")}
    assert "--init" not in lines["01"]
    assert ("--init-image starts/02/Cat.png starts/02/Lighthouse.png starts/02/Tree.png --strength 0.9 "
            in lines["02"])


def test_sweep_labels_and_a_per_style_sweep(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, sweep={"temperature": [1.0, 2.0]},
                styles={"02": {"sweep": {"layers": [["up_blocks.3.attentions.2.transformer_blocks.0.attn1",
                                                     "up_blocks.3.attentions.1.transformer_blocks.0.attn1"]]}}})
    outputs = [folder for style in ("01", "02") for folder in setting_folders(inject_settings(workdir, style))]
    assert outputs == ["results/01/styleid", "results/01/sweep/g0.75_t1.0", "results/01/sweep/g0.75_t2.0",
                       "results/02/styleid", "results/02/sweep/g0.75_t1.5_L11-10"]


@pytest.mark.parametrize("change, message", [
    (dict(layers="spec7"), "spec7"),
    (dict(layers=[]), "layers"),
    (dict(style_refs_mode="cycle"), "cycle"),
    (dict(sweep={"style_refs_mode": ["pool", "shuffle"]}), "shuffle"),
    (dict(styles={"01": {"layers": "all"}}), "all"),
    (dict(gen_strength=0), "gen_strength"),
    (dict(gen_candidates=0), "gen_candidates"),
    (dict(styles={"02": {"gen_candidates_metric": "lpips"}}), "lpips"),
])
def test_bad_lever_settings_are_refused(tmp_path, change, message):
    assert_config_refused(tmp_path, change, message)
