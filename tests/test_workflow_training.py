"""The workflow's LoRA-training levers: the commands they give, and what each change replans (dry runs)."""

from __future__ import annotations

import pytest
from test_workflow import AFTER_INJECT, chain, commands, copy_workflow, edit_config, pending, snakemake

LEVERS = ["--lr-scheduler", "--gradient-accumulation-steps", "--class-dir", "--text-encoder-lora",
          "--validation-every"]
CLASS = dict(class_prompt="a painting", num_class_images=2)


def _train_commands(workdir):
    lines = commands(workdir, "jstyleid train-lora")
    return {style: next(line for line in lines if f"data/{style} " in line) for style in ("01", "02")}


def test_levers_reach_train_lora_of_their_style_only(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    defaults = _train_commands(workdir)
    assert not any(option in line for line in defaults.values() for option in LEVERS)
    assert all("--checkpoint-every 100 " in line for line in defaults.values())
    edit_config(workdir, styles={"02": dict(lr_scheduler="cosine", lr_warmup_steps=1, gradient_accumulation_steps=2,
                                            lora_text_encoder=True, validation_every=1,
                                            validation_prompts=["a cat in style_{style}"], **CLASS)})
    changed = _train_commands(workdir)
    assert changed["01"] == defaults["01"]
    for option in LEVERS + ["--validation-prompt 'a cat in style_02'", "--class-prompt 'a painting'"]:
        assert option in changed["02"], option


def test_styles_with_equal_class_settings_share_one_class_image_set(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, **CLASS)
    [job] = commands(workdir, "jstyleid class-images")
    folder = job.split("--out-dir ")[1].split()[0]
    assert folder.startswith("results/class_images/")
    assert all(f"--class-dir {folder} " in line for line in _train_commands(workdir).values())
    edit_config(workdir, styles={"02": dict(num_class_images=3)})
    assert len(commands(workdir, "jstyleid class-images")) == 2


@pytest.mark.slow
def test_checkpoint_interval_reruns_no_training(workflow):
    edit_config(workflow, lora_checkpoint_every=7, styles={"01": {"lora_checkpoint_every": 0}})
    assert pending(workflow) == set()  # the report prints only the keys that can change a picture


@pytest.mark.slow
@pytest.mark.parametrize("lever", [
    dict(lr_scheduler="cosine", lr_warmup_steps=1),
    dict(gradient_accumulation_steps=2),
    dict(lora_text_encoder=True),
    dict(validation_every=1, validation_prompts=["a cat"]),
])
def test_a_lever_of_one_style_reruns_its_chain_only(workflow, lever):
    edit_config(workflow, styles={"02": lever})
    assert pending(workflow) == chain("02", "train_lora", "generate", "invert_content", "inject") | AFTER_INJECT


@pytest.mark.slow
def test_class_images_are_built_once_and_kept_when_one_style_changes(workflow):
    edit_config(workflow, **CLASS)
    both = AFTER_INJECT.union(*(chain(s, "train_lora", "generate", "invert_content", "inject") for s in ("01", "02")))
    assert pending(workflow) == both | {("class_images", "*")}
    snakemake(workflow, "--cores", "2", "--until", "class_images")
    assert pending(workflow) == both
    edit_config(workflow, styles={"02": {"lora_rank": 2}})
    assert ("class_images", "*") not in pending(workflow)
