"""train-lora's levers: resumable checkpoints, lr schedules, gradient accumulation, prior preservation,
text-encoder LoRA and validation strips (each against an uninterrupted run or diffusers' own code)."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from jstyleid.training.checkpoint import CHECKPOINT_FILE
from jstyleid.training.lora import LORA_FILE, PriorPreservation, TextEncoderLora, initial_lora, noisy_and_target, train_lora
from jstyleid.storage.inputs import style_images
from jstyleid.training.validation import Validation, strips_html
from test_dreambooth import PROMPT, RES, _engine, style_dir  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-5  # resumed vs uninterrupted weights; the README states it


def _weights(folder):
    return load_file(Path(folder) / LORA_FILE)


def _max_difference(a, b):
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


# -- A. resumable training -------------------------------------------------------------------------

STEPS, EVERY, LR = 10, 2, 1e-2


@pytest.fixture
def one_thread():
    """One intra-op thread, in this process and in train-lora's: a kernel's summation order then cannot
    change with the load on the machine (these tests compare runs to the last bits the README promises)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _start(model, style, out, log):
    cmd = [sys.executable, "-m", "jstyleid.cli", "train-lora", "--model", str(model), "--device", "cpu",
           "--style-dir", str(style), "--out-dir", str(out), "--train-steps", str(STEPS), "--lr", str(LR),
           "--resolution", str(RES), "--checkpoint-every", str(EVERY)]
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1")
    return subprocess.Popen(cmd, stderr=open(log, "w"), env=env)


def _wait_for(condition, process, timeout=600):
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "train-lora ended before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for train-lora"
        time.sleep(0.05)


@pytest.mark.slow  # three train-lora processes; test_checkpoint_of_other_settings_is_not_resumed resumes in the fast set
def test_killed_training_resumes_to_the_uninterrupted_weights(tiny_model, style_dir, tmp_path, one_thread):
    out, logs = tmp_path / "lora", [tmp_path / f"run{i}.log" for i in range(3)]
    checkpoint = out / CHECKPOINT_FILE
    # 1. SIGKILL once the first checkpoint (step 2) is on disk: nothing gets the chance to clean up.
    first = _start(tiny_model, style_dir, out, logs[0])
    _wait_for(checkpoint.is_file, first)
    first.kill()
    assert first.wait() == -signal.SIGKILL
    # 2. The rerun resumes; SIGTERM (SLURM's warning before a time-limit kill) checkpoints and exits 143.
    second = _start(tiny_model, style_dir, out, logs[1])
    _wait_for(lambda: "resumed at step" in logs[1].read_text(), second)
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=600) == 143
    resumed_at = int(re.search(r"resumed at step (\d+) of", logs[1].read_text()).group(1))
    stopped_at = int(re.search(r"stopped by SIGTERM after step (\d+)", logs[1].read_text()).group(1))
    assert EVERY <= resumed_at < stopped_at < STEPS and not (out / LORA_FILE).exists()
    # 3. The last rerun resumes where SIGTERM stopped, finishes and removes the checkpoint.
    third = _start(tiny_model, style_dir, out, logs[2])
    assert third.wait(timeout=600) == 0
    assert f"resumed at step {stopped_at} of {STEPS}" in logs[2].read_text()
    assert not checkpoint.exists() and not list(out.glob(".*tmp*"))
    rows = (out / "loss.csv").read_text().splitlines()
    assert len(rows) == STEPS + 1

    reference = tmp_path / "uninterrupted"
    losses = train_lora(_engine(tiny_model), style_images(style_dir), reference, prompt=PROMPT, steps=STEPS, lr=LR,
                        resolution=RES, checkpoint_every=0)
    assert _max_difference(_weights(out), _weights(reference)) <= TOLERANCE
    np.testing.assert_allclose([float(r.split(",")[1]) for r in rows[1:]], losses, rtol=1e-5)


class _Killed(Exception):
    pass


def test_checkpoint_of_other_settings_is_not_resumed(tiny_model, style_dir, tmp_path, caplog, monkeypatch, one_thread):
    from jstyleid.engines.torch_lora import TorchLoraTrainer

    images, out = style_images(style_dir), tmp_path / "lora"
    common = dict(prompt=PROMPT, steps=4, lr=LR, resolution=RES, checkpoint_every=2)
    update = TorchLoraTrainer.update
    calls = []

    def dying_update(self, factor=1.0):
        calls.append(1)
        if len(calls) == 3:
            raise _Killed  # a kill during step 3: the checkpoint of step 2 stays
        return update(self, factor)

    monkeypatch.setattr(TorchLoraTrainer, "update", dying_update)
    with pytest.raises(_Killed):
        train_lora(_engine(tiny_model), images, out, seed=0, **common)
    monkeypatch.setattr(TorchLoraTrainer, "update", update)
    assert (out / CHECKPOINT_FILE).is_file()

    with caplog.at_level(logging.INFO, logger="jstyleid"):
        other = train_lora(_engine(tiny_model), images, out, seed=1, **common)  # another seed: another hash
    assert "written with other training settings" in caplog.text and "resumed at" not in caplog.text
    fresh = train_lora(_engine(tiny_model), images, tmp_path / "fresh", seed=1, **common)
    assert other == fresh
    assert _weights(out).keys() == _weights(tmp_path / "fresh").keys()
    assert all(np.array_equal(_weights(out)[k], _weights(tmp_path / "fresh")[k]) for k in _weights(out))


# -- D. schedule and accumulation ------------------------------------------------------------------

@pytest.mark.parametrize("name, warmup", [("cosine", 2), ("linear", 1)])
def test_learning_rates_per_step_are_get_schedulers(tiny_model, style_dir, tmp_path, monkeypatch, name, warmup):
    from diffusers.optimization import get_scheduler

    from jstyleid.engines.torch_lora import TorchLoraTrainer

    used = []
    update = TorchLoraTrainer.update

    def recording_update(self, factor=1.0):
        loss = update(self, factor)
        used.append(self.optimizer.param_groups[0]["lr"])
        return loss

    monkeypatch.setattr(TorchLoraTrainer, "update", recording_update)
    steps, lr = 5, 1e-3
    train_lora(_engine(tiny_model), style_images(style_dir), tmp_path, prompt=PROMPT, steps=steps, lr=lr,
               resolution=RES, lr_scheduler=name, lr_warmup_steps=warmup)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=steps)
    expected = []
    for _ in range(steps):
        expected.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert used == expected and len(set(used)) > 2


def _draws(engine, batch, seed=3):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((batch, 4, RES // 8, RES // 8), dtype=np.float32)
    noise = rng.standard_normal(x0.shape, dtype=np.float32)
    t = rng.integers(0, 1000, size=batch)
    x_t, target = noisy_and_target(engine.schedule, x0, noise, t)
    return x0, noise, t, x_t, target


def _trainer(model, **settings):
    trainer = _engine(model).lora_trainer(rank=4, lr=1e-3, max_grad_norm=1e9, **settings)
    shapes = {k: v.shape for k, v in trainer.lora_state_dict().items()}
    init = initial_lora(shapes, np.random.default_rng(0))
    # a non-zero up weight, so the gradients of the down weights are not zero either
    trainer.load_lora_state_dict({k: v + 0.05 * (".lora.up." in k) for k, v in init.items()})
    return trainer


def test_accumulating_two_batches_of_one_equals_one_batch_of_two(tiny_model):
    whole, halves = _trainer(tiny_model), _trainer(tiny_model)
    _, _, t, x_t, target = _draws(whole.engine, 2)
    whole.backward(x_t, t, target, whole.condition([PROMPT]))
    for i in range(2):
        halves.backward(x_t[i:i + 1], t[i:i + 1], target[i:i + 1], halves.condition([PROMPT]), scale=0.5)
    a, b = whole.gradients(), halves.gradients()
    assert _max_difference(a, b) < 1e-5 and max(float(np.abs(g).max()) for g in a.values()) > 1e-4
    loss_whole, loss_halves = whole.update(), halves.update()
    assert loss_whole == pytest.approx(loss_halves, rel=1e-5)
    assert _max_difference(whole.lora_state_dict(), halves.lora_state_dict()) < 1e-5


# -- B. prior preservation -------------------------------------------------------------------------

def diffusers_lora_unet(model, lora):
    """diffusers' script's U-Net with a peft LoRA adapter holding `lora` (our keys), its LoRA parameters by
    our keys, and its DDPMScheduler: the reference of a training step."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig

    from jstyleid.engines.torch_lora import _diffusers_key

    unet = UNet2DConditionModel.from_pretrained(model / "unet")
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                target_modules=["to_k", "to_q", "to_v", "to_out.0"]))
    params = {_diffusers_key(n): p for n, p in unet.named_parameters() if p.requires_grad}
    with torch.no_grad():
        for key, p in params.items():
            p.copy_(torch.from_numpy(lora[key]))
    return unet, params, DDPMScheduler.from_pretrained(model / "scheduler")


def test_prior_preservation_loss_and_gradients_equal_diffusers_script(tiny_model):
    """The reference is diffusers' train_dreambooth_lora.py step: noisy latents by DDPMScheduler.add_noise,
    the target by get_velocity, the text encoder on [instance ids, class ids], torch.chunk of the
    prediction and F.mse_loss(instance) + prior_loss_weight * F.mse_loss(class)."""
    import torch.nn.functional as F

    batch, weight, class_prompt = 1, 0.7, "a painting"
    trainer = _trainer(tiny_model)
    x0, noise, t, x_t, target = _draws(trainer.engine, 2 * batch)
    trainer.backward(x_t, t, target, trainer.condition([PROMPT] * batch + [class_prompt] * batch),
                     prior_weight=weight)
    ours_grads, initial = trainer.gradients(), trainer.lora_state_dict()
    ours_loss = trainer.update()

    unet, params, scheduler = diffusers_lora_unet(tiny_model, initial)  # the weights before our update
    model_input, noise_, timesteps = torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(t)
    noisy = scheduler.add_noise(model_input, noise_, timesteps)
    encoder = trainer.engine.text_encoder
    ids = trainer.engine.token_ids([PROMPT] * batch + [class_prompt] * batch)
    with torch.no_grad():
        encoder_hidden_states = encoder(ids)[0]
    model_pred = unet(noisy, timesteps, encoder_hidden_states).sample
    target_ = scheduler.get_velocity(model_input, noise_, timesteps)
    model_pred, model_pred_prior = torch.chunk(model_pred, 2, dim=0)
    target_, target_prior = torch.chunk(target_, 2, dim=0)
    loss = F.mse_loss(model_pred.float(), target_.float(), reduction="mean")
    prior_loss = F.mse_loss(model_pred_prior.float(), target_prior.float(), reduction="mean")
    loss = loss + weight * prior_loss
    loss.backward()

    assert ours_loss == pytest.approx(float(loss), abs=1e-5)
    theirs = {key: p.grad.numpy() for key, p in params.items()}
    assert _max_difference(ours_grads, theirs) < 1e-5
    # the class half matters: without it the loss is another one
    assert abs(float(prior_loss)) > 1e-3


def test_class_images_and_training_with_them(tiny_model, style_dir, tmp_path):
    from PIL import Image

    from jstyleid.cli import main

    def class_images(count, out):
        return main(["class-images", "--model", str(tiny_model), "--device", "cpu", "--prompt", "a painting",
                     "--count", str(count), "--ddim-steps", "2", "--resolution", str(RES), "--out-dir", str(out)])

    assert class_images(3, tmp_path / "a") == 0 and class_images(2, tmp_path / "b") == 0
    a, b = style_images(tmp_path / "a"), style_images(tmp_path / "b")
    assert [p.name for p in a] == ["0000.png", "0001.png", "0002.png"]
    pixels = [np.asarray(Image.open(p)) for p in a]
    assert pixels[0].shape == (RES, RES, 3) and not np.array_equal(pixels[0], pixels[1])
    # a larger count only adds images (up to the batch's rounding: 3 images were one batch, 2 another)
    assert all(np.abs(np.asarray(Image.open(p), dtype=int) - q).max() <= 1 for p, q in zip(b, pixels))

    prior = PriorPreservation(a, "a painting", 1.0)
    losses = train_lora(_engine(tiny_model), style_images(style_dir), tmp_path / "lora", prompt=PROMPT, steps=2,
                        lr=LR, resolution=RES, prior=prior)
    plain = train_lora(_engine(tiny_model), style_images(style_dir), tmp_path / "plain", prompt=PROMPT, steps=2,
                       lr=LR, resolution=RES)
    assert np.isfinite(losses).all() and losses != plain


# -- C. text-encoder LoRA --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def text_encoder_lora(tiny_model, style_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("te-lora")
    engine = _engine(tiny_model)
    train_lora(engine, style_images(style_dir), out, prompt=PROMPT, steps=3, lr=1e-2, resolution=RES,
               text_encoder=TextEncoderLora(rank=2, lr=1e-2))
    return out, engine


def test_text_encoder_lora_round_trips_through_load_lora_weights(tiny_model, text_encoder_lora):
    from diffusers import StableDiffusionPipeline

    out, trained = text_encoder_lora
    keys = _weights(out).keys()
    text_keys = [k for k in keys if k.startswith("text_encoder.")]
    assert text_keys and all(k.startswith(("unet.", "text_encoder.")) for k in keys)
    assert {_weights(out)[k].shape[0] for k in text_keys if ".lora_A." in k} == {2}  # its own rank

    pipe = StableDiffusionPipeline.from_pretrained(tiny_model, safety_checker=None, requires_safety_checker=False)
    ids = trained.token_ids([f"a cat in {PROMPT}"])
    with torch.no_grad():
        before = pipe.text_encoder(ids)[0]
        pipe.load_lora_weights(out)
        after = pipe.text_encoder(ids)[0]
    assert float((after - before).abs().max()) > 1e-3
    np.testing.assert_allclose(after.numpy(), trained.numpy(trained.text([f"a cat in {PROMPT}"])), atol=1e-5)


@pytest.mark.slow  # the fast set keeps the round trip of this LoRA and generation with a U-Net LoRA (test_generate)
def test_generation_with_a_text_encoder_lora_equals_the_pipeline(tiny_model, text_encoder_lora):
    from test_generate import PROMPTS, STEPS, _noise, _pipeline_latents

    from jstyleid.core.sampling import sample
    from jstyleid.core.schedule import timesteps

    out, _ = text_encoder_lora
    engine = _engine(tiny_model, lora=str(out))
    noise = _noise(PROMPTS[:1])
    ours = engine.numpy(sample(engine, PROMPTS[:1], noise, timesteps(STEPS)))
    np.testing.assert_allclose(ours, _pipeline_latents(tiny_model, PROMPTS[:1], noise, 7.5, lora=out), atol=1e-4)
    from safetensors.numpy import save_file

    unet_part = {k: v for k, v in _weights(out).items() if k.startswith("unet.")}
    save_file(unet_part, out.parent / "unet-only.safetensors", metadata={"format": "pt"})
    unet_only = _engine(tiny_model, lora=str(out.parent / "unet-only.safetensors"))
    other = unet_only.numpy(sample(unet_only, PROMPTS[:1], noise, timesteps(STEPS)))
    assert np.abs(ours - other).max() > 1e-4


# -- E. validation strips --------------------------------------------------------------------------

def test_validation_strips_show_the_lora_of_each_step(tiny_model, style_dir, tmp_path):
    from PIL import Image

    from jstyleid.pipelines.generate import generate_images

    prompts = ["a cat in style_07", "a house"]
    validation = Validation(prompts, every=2, steps=2, guidance=7.5, seed=0, resolution=RES)
    out = tmp_path / "lora"
    train_lora(_engine(tiny_model), style_images(style_dir), out, prompt=PROMPT, steps=4, lr=LR, resolution=RES,
               validation=validation)
    folder = out / "validation"
    assert sorted(p.name for p in folder.iterdir()) == ["step000000", "step000002", "step000004", "strips.json"]
    for step, lora in ((0, None), (4, str(out))):  # step 0: the base model; the last: the saved LoRA
        expected = [tmp_path / f"expected{step}" / f"{i}.png" for i in range(2)]
        generate_images(_engine(tiny_model, lora=lora), prompts, expected, steps=2, resolution=RES, seed=0)
        for prompt, path in zip(prompts, expected):
            ours = np.asarray(Image.open(folder / f"step{step:06d}" / f"{prompt}.png"), dtype=int)
            assert np.abs(ours - np.asarray(Image.open(path), dtype=int)).max() <= 1
    page = strips_html(out, lambda path: f"<img src='{Path(path).relative_to(out)}'>")
    assert page.count("<tr><td>") == 2 and "<th>step 0</th><th>step 2</th><th>step 4</th>" in page
    assert "<img src='validation/step000004/a house.png'>" in page
    only = strips_html(out, lambda path: f"<img src='{Path(path).relative_to(out)}'>", prompts=["a house"])
    assert only.count("<tr><td>") == 1 and "a cat" not in only  # one style's prompts of a shared LoRA
    from jstyleid.reporting.report import _validation_strips

    report = _validation_strips(str(out), tmp_path / "report")  # the report's section: thumbnails copied beside it
    assert report.count("<img ") == 6 and len(list((tmp_path / "report").rglob("*.png"))) == 6


def test_a_snapshot_step_is_validated_too(tiny_model, style_dir, tmp_path):
    validation = Validation(["a house"], every=2, steps=2, guidance=7.5, seed=0, resolution=RES)
    out = tmp_path / "lora"
    train_lora(_engine(tiny_model), style_images(style_dir), out, prompt=PROMPT, steps=4, lr=LR, resolution=RES,
               validation=validation, snapshot_steps=[1, 4])
    assert json.loads((out / "validation" / "strips.json").read_text())["steps"] == [0, 1, 2, 4]
