"""One LoRA shared by several styles (issue 19, `lora_scope: shared`): every style's images in one
training, each image conditioned on its own style's instance prompt."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from jstyleid.cli import main
from jstyleid.storage.inputs import style_images
from jstyleid.training import lora
from jstyleid.training.lora import LORA_FILE, train_lora
from test_dreambooth import RES, _engine
from test_lora_training import _draws, _max_difference, _trainer, diffusers_lora_unet


@pytest.fixture(scope="module")
def two_styles(tmp_path_factory):
    """Style folders 03/ (two striped pictures) and 11/ (three flat ones)."""
    root = tmp_path_factory.mktemp("shared")
    y, x = np.mgrid[0:64, 0:64] / 64
    for name, count in (("03", 2), ("11", 3)):
        (root / name / "images").mkdir(parents=True)
        for k in range(count):
            s = 0.5 + 0.5 * np.sin(2 * np.pi * (2 + k + int(name)) * (x + 0.3 * y))
            rgb = np.stack([s, 0.5 * np.ones_like(s) * (name == "11"), 1 - s], -1)
            Image.fromarray((rgb * 255).astype(np.uint8)).save(root / name / "images" / f"{k}.png")
    return [root / "03", root / "11"]


def test_a_two_style_batch_has_the_loss_and_gradients_of_diffusers_script(tiny_model):
    """Reference: diffusers' train_dreambooth_lora.py step on a batch of two images whose prompts differ:
    DDPMScheduler.add_noise, get_velocity, the text encoder on both prompts' ids, F.mse_loss (mean)."""
    import torch.nn.functional as F

    prompts = ["style_03", "style_11"]
    trainer = _trainer(tiny_model)
    x0, noise, t, x_t, target = _draws(trainer.engine, 2)
    trainer.backward(x_t, t, target, trainer.condition(prompts))
    ours_grads, initial = trainer.gradients(), trainer.lora_state_dict()
    ours_loss = trainer.update()

    unet, params, scheduler = diffusers_lora_unet(tiny_model, initial)
    model_input, noise_, timesteps = torch.from_numpy(x0), torch.from_numpy(noise), torch.from_numpy(t)
    with torch.no_grad():
        encoder_hidden_states = trainer.engine.text_encoder(trainer.engine.token_ids(prompts))[0]
    model_pred = unet(scheduler.add_noise(model_input, noise_, timesteps), timesteps, encoder_hidden_states).sample
    loss = F.mse_loss(model_pred.float(), scheduler.get_velocity(model_input, noise_, timesteps).float())
    loss.backward()
    assert ours_loss == pytest.approx(float(loss), abs=1e-5)
    assert _max_difference(ours_grads, {key: p.grad.numpy() for key, p in params.items()}) < 1e-5
    # the second prompt matters: one prompt for both images gives another loss
    same = _trainer(tiny_model)
    same.backward(x_t, t, target, same.condition(prompts[:1]))
    assert abs(same.update() - ours_loss) > 1e-6


def test_each_step_conditions_every_image_on_its_own_style(tiny_model, two_styles, tmp_path, monkeypatch):
    images = [image for folder in two_styles for image in style_images(folder)]
    prompts = [f"style_{folder.name}" for folder in two_styles for _ in style_images(folder)]
    drawn, seen = [], []
    next_batch = lora.ImageBatches.next
    monkeypatch.setattr(lora.ImageBatches, "next", lambda self, rng: drawn.append(next_batch(self, rng)) or drawn[-1])
    from jstyleid.engines.torch_lora import TorchLoraTrainer

    condition = TorchLoraTrainer.condition
    monkeypatch.setattr(TorchLoraTrainer, "condition", lambda self, texts: seen.append(list(texts)) or condition(self, texts))
    train_lora(_engine(tiny_model), images, tmp_path / "lora", prompt=prompts, steps=6, batch_size=2, resolution=RES)
    assert seen == [[prompts[i] for i in index] for index in drawn] and len(drawn) == 6
    assert {text for texts in seen for text in texts} == {"style_03", "style_11"}


def test_the_cli_trains_one_lora_on_several_style_folders(tiny_model, two_styles, tmp_path, capsys):
    out = tmp_path / "shared"
    assert main(["train-lora", "--model", str(tiny_model), "--device", "cpu", "--style-dir", *map(str, two_styles),
                 "--out-dir", str(out), "--train-steps", "2", "--rank", "8", "--resolution", str(RES)]) == 0
    weights = load_file(out / LORA_FILE)
    assert {v.shape[0] for k, v in weights.items() if ".lora.down." in k} == {8}
    single = tmp_path / "single"
    assert main(["train-lora", "--model", str(tiny_model), "--device", "cpu", "--style-dir", str(two_styles[0]),
                 "--out-dir", str(single), "--train-steps", "2", "--rank", "8", "--resolution", str(RES)]) == 0
    assert _max_difference(weights, load_file(single / LORA_FILE)) > 1e-6  # the other style's images count
    code = main(["train-lora", "--model", str(tiny_model), "--style-dir", *map(str, two_styles),
                 "--out-dir", str(out), "--instance-prompt", "sks"])
    assert code == 2 and capsys.readouterr().err.strip().endswith(
        "--instance-prompt: a shared LoRA gives each style folder its own: style_<folder name>")


def test_a_snapshot_of_the_shared_lora_equals_a_shared_training_stopped_at_its_step(tiny_model, two_styles, tmp_path):
    from jstyleid.training.lora import snapshot_file
    from test_lora_training import TOLERANCE

    images = [image for folder in two_styles for image in style_images(folder)]
    prompts = [f"style_{folder.name}" for folder in two_styles for _ in style_images(folder)]

    def train(out, steps, **levers):
        train_lora(_engine(tiny_model), images, out, prompt=prompts, steps=steps, lr=1e-3, batch_size=2,
                   resolution=RES, **levers)

    train(tmp_path / "shared", 3, snapshot_steps=[2, 3])
    train(tmp_path / "alone", 2)
    snapshot = load_file(snapshot_file(tmp_path / "shared", 2))
    assert _max_difference(snapshot, load_file(tmp_path / "alone" / LORA_FILE)) <= TOLERANCE
    assert _max_difference(snapshot, load_file(tmp_path / "shared" / LORA_FILE)) > 1e-6  # step 3 moved on
