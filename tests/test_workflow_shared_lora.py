"""lora_scope: shared (issue 19, item 4): one LoRA for every style, in the workflow. The Plan's functions
called directly, then the plans of dry runs, then a demo run with the shared LoRA."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file
from test_workflow import AFTER_INJECT, ROOT, chain, commands, copy_workflow, edit_config, pending, snakemake
from test_workflow_functions import RULES, make_config, rule
from test_workflow_variants import out_folder

from jstyleid import workflow as wf
from jstyleid.errors import InputError

SHARED_WEIGHTS = "results/shared/lora/pytorch_lora_weights.safetensors"
WITH_SHARED = SimpleNamespace(**vars(RULES), train_lora_shared=rule(
    benchmark="results/benchmarks/train_lora_shared/all.tsv", weights=SHARED_WEIGHTS,
    loss=["results/shared/lora/loss.csv", "results/shared/lora/loss.png"]))
CHAINS = AFTER_INJECT.union(*(chain(s, "generate", "invert_content", "inject") for s in ("01", "02")))


@pytest.fixture
def styles_dir(tmp_path):
    for style in ("01", "02"):
        shutil.copytree(ROOT / "data" / style, tmp_path / "data" / style)
    return tmp_path / "data"


def plan(styles_dir, **changes) -> wf.Plan:
    return wf.Plan(make_config(styles_dir, **changes), ["01", "02"], WITH_SHARED)


def test_every_style_loads_its_own_lora_by_default_and_the_shared_one_when_shared(styles_dir):
    own, shared = plan(styles_dir), plan(styles_dir, lora_scope="shared")
    assert [own.lora_weights(s) for s in ("01", "02")] == [f"results/{s}/lora/pytorch_lora_weights.safetensors"
                                                          for s in ("01", "02")]
    assert [shared.lora_weights(s) for s in ("01", "02")] == [SHARED_WEIGHTS] * 2
    assert shared.loss_curve("02") == "results/shared/lora/loss.png"
    assert own.benchmarks()[1:3] == ["results/benchmarks/train_lora/01.tsv", "results/benchmarks/train_lora/02.tsv"]
    assert shared.benchmarks()[1:4] == ["results/benchmarks/train_lora_shared/all.tsv",
                                        "results/benchmarks/generate/01.tsv", "results/benchmarks/generate/02.tsv"]


def test_the_shared_lora_trains_the_generating_styles_with_steps_and_rank_per_style(styles_dir, tmp_path):
    shared = plan(styles_dir, lora_scope="shared", lora_steps=3, lora_rank=2)
    folders = [str(styles_dir / "01"), str(styles_dir / "02")]
    assert shared.manifest("train_lora_shared", "all") == {"--style-dir": folders}
    assert (shared.shared_lora_setting("lora_steps"), shared.shared_lora_setting("lora_rank")) == (6, 4)
    assert len(shared.shared_lora_images()) == len(shared.style_images("01")) + len(shared.style_images("02"))
    chosen = plan(styles_dir, lora_scope="shared", lora_steps_shared=5, lora_rank_shared=3)
    assert (chosen.shared_lora_setting("lora_steps"), chosen.shared_lora_setting("lora_rank")) == (5, 3)
    (tmp_path / "mine" / "02").mkdir(parents=True)  # 02 brings its content: no LoRA for it
    own_content = plan(styles_dir, lora_scope="shared", lora_steps=3,
                       styles={"02": {"content_dir": str(tmp_path / "mine" / "{style}")}})
    assert own_content.sharing_styles() == ["01"] and own_content.shared_lora_setting("lora_steps") == 3
    assert own_content.benchmarks().count("results/benchmarks/train_lora_shared/all.tsv") == 1


def test_the_shared_levers_are_the_global_ones_and_validation_draws_every_styles_prompts(styles_dir):
    shared = plan(styles_dir, lora_scope="shared", class_prompt="a painting", lora_text_encoder=True,
                  validation_every=2, validation_prompts=["a cat in style_{style}", "a dog"],
                  styles={"02": {"validation_prompts": ["a dog", "a ship"], "resolution": 32}})
    levers = shared.train_lora_levers(wf.SHARED)
    assert "--text-encoder-lora" in levers and "--validation-every 2" in levers and "--validation-prompt" not in levers
    # the class images at the shared training's (global) resolution, not 02's
    assert f"--class-dir {shared.class_images_dir(wf.SHARED)} " in levers
    assert shared.class_image_sets()[shared.class_images_dir(wf.SHARED).rsplit("/", 1)[1]]["resolution"] == 64
    prompts = shared.manifest("train_lora_shared", "all")["--validation-prompt"]
    assert prompts == ["a cat in style_01", "a dog", "a ship"]
    assert shared.validation_strips("02") == "results/shared/lora"
    # each style's page shows its own prompts of the shared strips
    assert shared.own_validation_prompts("01") == {"validation_prompts": ["a cat in style_01", "a dog"]}
    assert shared.own_validation_prompts("02") == {"validation_prompts": ["a dog", "a ship"]}
    assert plan(styles_dir, validation_every=2, validation_prompts=["a dog"]).own_validation_prompts("01") == {}


@pytest.mark.parametrize("config, line", [
    (dict(styles={"02": {"lora_lr": 1e-3}}),
     "config styles 02 lora_lr: lora_scope: shared trains one LoRA for all styles; set it globally"),
    (dict(styles={"01": {"class_prompt": "a painting"}}), "config styles 01 class_prompt: lora_scope: shared"),
    (dict(instance_prompt="sks {style}"), "config instance_prompt: a shared LoRA gives each style its own token"),
    (dict(styles={"01": {"instance_prompt": "sks"}}), "config styles 01 instance_prompt: a shared LoRA"),
    (dict(validation_every=2), "config validation_prompts: validation_every is set but no style has"),
])
def test_what_one_shared_training_cannot_honour_is_refused_in_one_line(styles_dir, config, line):
    settings = make_config(styles_dir, lora_scope="shared", **config)
    with pytest.raises(InputError) as refusal:
        wf.check_lora_scope(settings, ["01", "02"])
    assert str(refusal.value).startswith(line) and "\n" not in str(refusal.value)
    wf.check_lora_scope(make_config(styles_dir, **config), ["01", "02"])  # per style: all allowed


def test_shared_snapshots_one_training_to_the_largest_step_any_style_lists(styles_dir):
    # lora_steps 2 x 2 styles: the shared training's own step is 4; 01 lists 2 and 6, 02 lists 8
    shared = plan(styles_dir, lora_scope="shared", lora_steps=2, sweep={"lora_steps": [2, 6]},
                  styles={"02": {"sweep": {"lora_steps": [8]}}})
    assert shared.trained_steps(wf.SHARED) == shared.trained_steps("01") == 8
    assert shared.snapshot_steps(wf.SHARED) == [2, 4, 6, 8]
    assert "--snapshot-steps 2 4 6 8" in shared.train_lora_levers(wf.SHARED)
    assert list(shared.variants("01")) == ["lora2", "lora6"] and list(shared.variants("02")) == ["lora8"]
    snapshot = "results/shared/lora/snapshots/step-{}/pytorch_lora_weights.safetensors".format
    assert shared.generation_lora("01", SHARED_WEIGHTS) == snapshot(4)  # each style's own chain: step 4
    assert shared.generation_lora("01", SHARED_WEIGHTS, "lora6") == snapshot(6)
    assert shared.generation_lora("02", SHARED_WEIGHTS, "lora8") == SHARED_WEIGHTS  # the last step
    assert plan(styles_dir, lora_scope="shared", lora_steps=2).snapshot_steps(wf.SHARED) == []  # no sweep


def test_a_style_folder_named_shared_is_refused_with_a_shared_lora(styles_dir):
    with pytest.raises(InputError, match="style folder shared: its results/shared/ is the shared LoRA's"):
        wf.check_lora_scope(make_config(styles_dir, lora_scope="shared"), ["01", "shared"])


def test_the_report_shows_the_shared_keys_only_with_a_shared_lora(styles_dir):
    shown = plan(styles_dir, lora_steps_shared=9).shown_config()
    assert shown == plan(styles_dir).shown_config() and "lora_scope" not in shown
    assert plan(styles_dir, lora_scope="shared").shown_config()["lora_steps_shared"] is None


def test_lora_scope_is_global_only(styles_dir):
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError):
        make_config(styles_dir, styles={"01": {"lora_scope": "shared"}})


def _train_commands(workdir):
    return commands(workdir, "jstyleid train-lora")


def test_dry_run_plans_one_shared_training_that_every_generate_reads(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    default = _train_commands(workdir)
    edit_config(workdir, lora_steps_shared=9, lora_rank_shared=3)  # unused with lora_scope style
    assert _train_commands(workdir) == default and len(default) == 2
    edit_config(workdir, lora_scope="shared", lora_steps_shared=None, lora_rank_shared=None)
    [shared] = _train_commands(workdir)
    assert "--style-dir data/01 data/02" in shared and "--out-dir results/shared/lora " in shared
    assert "--train-steps 4 --rank 8 " in shared and "--instance-prompt" not in shared  # FAST's 2 steps, rank 4 x 2
    generates = commands(workdir, "jstyleid generate")
    assert len(generates) == 2 and all(f"--lora {SHARED_WEIGHTS} " in line for line in generates)
    # each style prompts with its own token
    assert sorted(line.split("--template ")[1].split(" --")[0] for line in generates) == [
        "'{prompt} in style_01'", "'{prompt} in style_02'"]


def test_dry_run_the_shared_training_takes_the_levers_and_every_styles_validation_prompts(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, lora_scope="shared", class_prompt="a painting", num_class_images=2, lora_text_encoder=True,
                validation_every=1, validation_prompts=["a cat in style_{style}"])
    [classes] = commands(workdir, "jstyleid class-images")
    [shared] = _train_commands(workdir)
    folder = classes.split("--out-dir ")[1].split()[0]
    assert f"--class-dir {folder} --class-prompt 'a painting'" in shared and "--text-encoder-lora" in shared
    assert "--validation-every 1 " in shared and "--validation-prompt 'a cat in style_01' 'a cat in style_02'" in shared


def test_dry_run_a_snapshot_sweep_of_the_shared_lora_trains_once(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, lora_scope="shared", sweep={"lora_steps": [2, 6]})  # the shared training's own: 4
    [shared] = _train_commands(workdir)
    assert "--train-steps 6 " in shared and "--snapshot-steps 2 4 6 " in shared
    lora = {out_folder(line): line.split("--lora ")[1].split(" ")[0] for line in commands(workdir, "jstyleid generate")}
    snapshot = "results/shared/lora/snapshots/step-{}/pytorch_lora_weights.safetensors".format
    assert lora == {f"{style}/{folder}": weights for style in ("01", "02") for folder, weights in
                    (("content", snapshot(4)), ("variants/lora2/content", snapshot(2)),
                     ("variants/lora6/content", SHARED_WEIGHTS))}


def test_a_refusal_stops_the_run_before_any_job(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, lora_scope="shared", styles={"02": {"lora_steps": 3}})
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0
    line = "config styles 02 lora_steps: lora_scope: shared trains one LoRA for all styles"
    assert line in result.stderr + result.stdout


@pytest.mark.slow
def test_off_replans_nothing_and_shared_replans_the_training_and_every_chain(workflow):
    edit_config(workflow, lora_scope="style", lora_steps_shared=9, lora_rank_shared=3)
    assert pending(workflow) == set()
    edit_config(workflow, lora_scope="shared")
    assert pending(workflow) == CHAINS | {("train_lora_shared", "*")}


def _repaint(image):
    """A new picture in the style's image file (a change of its content, and a newer file)."""
    pixels = np.asarray(Image.open(image).convert("RGB"))
    Image.fromarray(255 - pixels).save(image)


@pytest.mark.slow
def test_a_demo_run_with_the_shared_lora_and_what_retrains_it(workflow):
    edit_config(workflow, lora_scope="shared")
    snakemake(workflow, "--cores", "2")
    weights = load_file(workflow / SHARED_WEIGHTS)
    assert {v.shape[0] for k, v in weights.items() if ".lora.down." in k} == {8}  # rank 4 x 2 styles
    losses = (workflow / "results/shared/lora/loss.csv").read_text().splitlines()
    assert len(losses) == 1 + 4  # a header, then 2 steps x 2 styles
    assert (workflow / "results/submission/mapping.json").is_file() and pending(workflow) == set()
    edit_config(workflow, lora_steps_shared=3)  # the shared steps: the training and every chain after it
    assert pending(workflow) == CHAINS | {("train_lora_shared", "*")}
    edit_config(workflow, lora_steps_shared=None)
    _repaint(sorted((workflow / "data/02/images").iterdir())[0])
    assert pending(workflow) == CHAINS | {("train_lora_shared", "*"), ("invert_style", "02")}
    snakemake(workflow, "--cores", "2", "--until", "manifest")
    shutil.copytree(ROOT / "data" / "03", workflow / "data" / "03")  # a new style joins the shared LoRA
    jobs = pending(workflow)
    assert ("train_lora_shared", "*") in jobs and ("generate", "01") in jobs
