"""generate: our DDIM + guidance loop against diffusers' StableDiffusionPipeline, per-prompt seeding, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from jstyleid.cli import main
from jstyleid.training.lora import LORA_FILE, save_lora
from jstyleid.engines import load_engine
from jstyleid.core.sampling import initial_noise, sample
from jstyleid.core.schedule import timesteps

RES, STEPS = 64, 4
PROMPTS = ["a cat", "a red house", "a bird"]


def _engine(model, lora=None):
    return load_engine("torch", str(model), device="cpu", dtype="float32", lora=lora)


def _pipeline_latents(model, texts, noise, guidance, lora=None):
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(model, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    if lora:
        pipe.load_lora_weights(lora)
    return pipe(list(texts), num_inference_steps=STEPS, guidance_scale=guidance, height=RES, width=RES,
                latents=torch.from_numpy(noise), output_type="latent").images.numpy()


def _noise(prompts, seed=0):
    return np.stack([initial_noise(seed, p, (4, RES // 8, RES // 8)) for p in prompts])


@pytest.fixture(scope="module")
def lora_file(tiny_model, tmp_path_factory):
    """A random LoRA (alpha / rank = 0.5) in train-lora's file format."""
    shapes = {k: v.shape for k, v in _engine(tiny_model).lora_trainer(rank=4).lora_state_dict().items()}
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("lora") / LORA_FILE
    save_lora(path, {k: 0.2 * rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}, scale=0.5)
    return path


@pytest.mark.parametrize("guidance", [7.5, 1.0])
@pytest.mark.parametrize("model", ["tiny_model", "tiny_model_epsilon"])
def test_sampling_matches_diffusers(request, model, guidance):
    folder = request.getfixturevalue(model)
    engine = request.getfixturevalue("torch_engine") if model == "tiny_model" else _engine(folder)
    texts = [f"{p} in style_01" for p in PROMPTS[:2]]
    noise = _noise(PROMPTS[:2])
    ours = engine.numpy(sample(engine, texts, noise, timesteps(STEPS), guidance=guidance))
    np.testing.assert_allclose(ours, _pipeline_latents(folder, texts, noise, guidance), atol=1e-4)


def test_lora_sampling_matches_diffusers(tiny_model, torch_engine, lora_file):
    engine = _engine(tiny_model, lora=str(lora_file))
    noise = _noise(PROMPTS[:1])
    ours = engine.numpy(sample(engine, PROMPTS[:1], noise, timesteps(STEPS)))
    np.testing.assert_allclose(ours, _pipeline_latents(tiny_model, PROMPTS[:1], noise, 7.5, lora=lora_file.parent),
                               atol=1e-4)
    base = torch_engine.numpy(sample(torch_engine, PROMPTS[:1], noise, timesteps(STEPS)))
    assert np.abs(ours - base).max() > 1e-2


def test_one_prompt_alone_equals_the_batch(torch_engine):
    taus = timesteps(STEPS)
    batch = torch_engine.numpy(sample(torch_engine, PROMPTS, _noise(PROMPTS), taus))
    alone = torch_engine.numpy(sample(torch_engine, PROMPTS[1:2], _noise(PROMPTS[1:2]), taus))
    np.testing.assert_allclose(alone[0], batch[1], rtol=1e-5, atol=1e-5)


def test_initial_noise_depends_on_seed_and_prompt_only():
    shape = (4, 8, 8)
    assert np.array_equal(initial_noise(3, "a cat", shape), initial_noise(3, "a cat", shape))
    assert not np.array_equal(initial_noise(3, "a cat", shape), initial_noise(4, "a cat", shape))
    assert not np.array_equal(initial_noise(3, "a cat", shape), initial_noise(3, "a dog", shape))


def test_cli_prompt_file_and_regenerating_one(tiny_model, tmp_path):
    prompts = tmp_path / "prompt.json"
    prompts.write_text(json.dumps({"0": "Bird", "1": "Sailing ship", "2": "A/B"}))
    common = ["--model", str(tiny_model), "--device", "cpu", "--ddim-steps", "3", "--resolution", str(RES),
              "--template", "{prompt} in style_01"]
    assert main(["generate", *common, "--prompts", str(prompts), "--out-dir", str(tmp_path / "all")]) == 0
    names = sorted(p.name for p in (tmp_path / "all").iterdir())
    assert names == ["A_B.png", "Bird.png", "Sailing ship.png"]
    assert main(["generate", *common, "--prompt", "Sailing ship", "--out", str(tmp_path / "one.png")]) == 0
    batched, alone = (np.asarray(Image.open(p)) for p in (tmp_path / "all" / "Sailing ship.png", tmp_path / "one.png"))
    assert batched.shape == (RES, RES, 3)
    assert np.abs(batched.astype(int) - alone).max() <= 1  # rounding of latents equal to ~1e-6


@pytest.mark.parametrize("case,problem", [
    ("missing prompts", "prompt file is missing"),
    ("bad prompts", "not valid JSON"),
    ("count", "one --out per --prompt"),
    ("template", "no {prompt} placeholder"),
    ("missing lora", "LoRA file not found"),
    ("bad lora", "cannot load LoRA weights"),
])
def test_bad_inputs_give_one_line(tiny_model, tmp_path, capsys, case, problem):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    args = {
        "missing prompts": ["--prompts", str(tmp_path / "prompt.json"), "--out-dir", str(tmp_path / "out")],
        "bad prompts": ["--prompts", str(tmp_path / "bad.json"), "--out-dir", str(tmp_path / "out")],
        "count": ["--prompt", "a", "b", "--out", str(tmp_path / "a.png")],
        "template": ["--prompt", "a", "--out", str(tmp_path / "a.png"), "--template", "in style_01"],
        "missing lora": ["--prompt", "a", "--out", str(tmp_path / "a.png"), "--lora", str(tmp_path / "none")],
        "bad lora": ["--prompt", "a", "--out", str(tmp_path / "a.png"), "--lora", str(tmp_path / "bad.safetensors")],
    }[case]
    code = main(["generate", "--model", str(tiny_model), "--device", "cpu", "--ddim-steps", "2",
                 "--resolution", str(RES), *args])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines[-1].startswith("jstyleid generate: error: ") and problem in lines[-1]
    assert not any("Traceback" in line for line in lines)
    assert not list(tmp_path.rglob("*.png")) and not list(tmp_path.rglob(".*tmp*"))
