"""train-lora's snapshots (issue 19): the LoRA at chosen steps of one training, each equal to a training
stopped there, and a longer training continuing from the kept checkpoint instead of starting over."""

from __future__ import annotations

import logging

import numpy as np
import torch
from safetensors.numpy import load_file

from jstyleid.cli import main
from jstyleid.storage.inputs import style_images
from jstyleid.training.checkpoint import CHECKPOINT_FILE
from jstyleid.training.lora import LORA_FILE, snapshot_file, train_lora
from test_dreambooth import PROMPT, RES, _engine, style_dir  # noqa: F401 (a fixture)
from test_lora_training import LR, TOLERANCE, _max_difference, one_thread  # noqa: F401 (a fixture)


def _train(model, style, out, steps, **levers):
    return train_lora(_engine(model), style_images(style), out, prompt=PROMPT, steps=steps, lr=LR, resolution=RES,
                      **levers)


def test_each_snapshot_equals_a_training_stopped_at_its_step(tiny_model, style_dir, tmp_path, one_thread):
    out = tmp_path / "lora"
    _train(tiny_model, style_dir, out, 5, snapshot_steps=[4, 2])
    for step in (2, 4):
        alone = tmp_path / f"alone-{step}"
        _train(tiny_model, style_dir, alone, step)
        snapshot = load_file(snapshot_file(out, step))
        assert snapshot.keys() == load_file(out / LORA_FILE).keys()
        assert _max_difference(snapshot, load_file(alone / LORA_FILE)) <= TOLERANCE
    assert _max_difference(load_file(snapshot_file(out, 2)), load_file(snapshot_file(out, 4))) > 1e-4  # they moved
    assert (out / CHECKPOINT_FILE).is_file()  # kept for a longer run


def test_more_steps_continue_from_the_kept_checkpoint(tiny_model, style_dir, tmp_path, caplog, one_thread):
    out, straight = tmp_path / "lora", tmp_path / "straight"
    _train(tiny_model, style_dir, out, 3, snapshot_steps=[2, 3])
    first = load_file(snapshot_file(out, 2))
    with caplog.at_level(logging.INFO, logger="jstyleid"):
        losses = _train(tiny_model, style_dir, out, 5, snapshot_steps=[2, 3, 5])
    assert "resumed at step 3 of 5" in caplog.text
    assert losses == _train(tiny_model, style_dir, straight, 5)
    assert _max_difference(load_file(out / LORA_FILE), load_file(straight / LORA_FILE)) <= TOLERANCE
    assert all(np.array_equal(first[k], load_file(snapshot_file(out, 2))[k]) for k in first)  # from the checkpoint


def test_a_schedule_that_depends_on_the_total_starts_over(tiny_model, style_dir, tmp_path, caplog, one_thread):
    out = tmp_path / "lora"
    _train(tiny_model, style_dir, out, 3, snapshot_steps=[3], lr_scheduler="cosine")
    with caplog.at_level(logging.INFO, logger="jstyleid"):
        _train(tiny_model, style_dir, out, 4, snapshot_steps=[3, 4], lr_scheduler="cosine")
    assert "written with other training settings" in caplog.text and "resumed at" not in caplog.text


def test_a_snapshot_earlier_than_the_checkpoint_and_not_in_it_starts_over(tiny_model, style_dir, tmp_path, caplog,
                                                                          one_thread):
    out = tmp_path / "lora"
    _train(tiny_model, style_dir, out, 3, snapshot_steps=[3])
    with caplog.at_level(logging.INFO, logger="jstyleid"):
        _train(tiny_model, style_dir, out, 4, snapshot_steps=[1, 4])
    assert "wants snapshots [1] before it" in caplog.text and "resumed at" not in caplog.text
    assert snapshot_file(out, 1).is_file()


def test_plain_diffusers_loads_a_snapshot(tiny_model, style_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    out = tmp_path / "lora"
    _train(tiny_model, style_dir, out, 2, snapshot_steps=[1])
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model, safety_checker=None, requires_safety_checker=False)
    weights = load_file(snapshot_file(out, 1))
    pipe.load_lora_weights(str(snapshot_file(out, 1).parent))
    loaded = {name: p for name, p in pipe.unet.named_parameters() if "lora" in name}
    assert len(loaded) == len(weights)
    key = next(iter(weights)).removeprefix("unet.")  # e.g. down_blocks...to_q.lora.down.weight
    module = key.replace(".lora.down.weight", ".lora_A.default_0.weight")
    match = [torch.from_numpy(weights[f"unet.{key}"]).equal(p.detach()) for n, p in loaded.items() if n == module]
    assert match == [True]


def test_snapshot_beyond_the_training_is_refused_before_the_model_loads(style_dir, tmp_path, capsys):
    code = main(["train-lora", "--model", str(tmp_path / "no-model"), "--style-dir", str(style_dir), "--out-dir",
                 str(tmp_path / "out"), "--train-steps", "5", "--snapshot-steps", "2", "7"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].endswith("--snapshot-steps: 7 is beyond --train-steps 5") and len(err) == 1
