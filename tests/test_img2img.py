"""Img2img starts: the schedule maths and whole generations against diffusers' StableDiffusionImg2ImgPipeline."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image

from jstyleid.cli import main
from jstyleid.core.sampling import initial_noise, sample
from jstyleid.core.img2img import Img2ImgStart, mean_image
from jstyleid.storage.inputs import preprocess
from jstyleid.core.schedule import img2img_timesteps, timesteps

RES, STEPS = 64, 5


def _diffusers_scheduler(model):
    from diffusers import DDIMScheduler

    return DDIMScheduler.from_pretrained(model / "scheduler")


@pytest.mark.parametrize("steps", [5, 10, 50])
@pytest.mark.parametrize("strength", [0.05, 0.3, 0.5, 0.75, 0.9, 1.0])
def test_kept_timesteps_are_diffusers_get_timesteps(tiny_model, steps, strength):
    from diffusers import StableDiffusionImg2ImgPipeline

    scheduler = _diffusers_scheduler(tiny_model)
    scheduler.set_timesteps(steps)
    theirs, n = StableDiffusionImg2ImgPipeline.get_timesteps(types.SimpleNamespace(scheduler=scheduler), steps,
                                                             strength, "cpu")
    if n == 0:
        with pytest.raises(Exception, match="leaves no step"):
            img2img_timesteps(timesteps(steps), strength)
        return
    assert img2img_timesteps(timesteps(steps), strength) == sorted(theirs.tolist())


def test_add_noise_is_the_schedulers(torch_engine, tiny_model):
    scheduler = _diffusers_scheduler(tiny_model)
    rng = np.random.default_rng(0)
    x0, noise = (rng.standard_normal((2, 4, 8, 8)).astype(np.float32) for _ in range(2))
    for t in (1, 401, 901):
        theirs = scheduler.add_noise(torch.from_numpy(x0), torch.from_numpy(noise), torch.tensor([t, t])).numpy()
        np.testing.assert_allclose(torch_engine.schedule.add_noise(x0, noise, t), theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("strength", [0.6, 1.0])
def test_img2img_generation_matches_diffusers(tiny_model, torch_engine, images, monkeypatch, strength):
    import diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img as img2img_module
    from diffusers import StableDiffusionImg2ImgPipeline

    prompts = ["a cat", "a red house"]
    pixels = [preprocess(images["c0"], RES), preprocess(images["s1"], RES)]
    noise = np.stack([initial_noise(0, p, (4, RES // 8, RES // 8)) for p in prompts])
    start, kept = Img2ImgStart(pixels, strength, len(prompts))(torch_engine, range(2), noise, timesteps(STEPS))
    ours = torch_engine.numpy(sample(torch_engine, prompts, start, kept, guidance=7.5))

    # Same init latents (the engine's encode) and the same noise for the pipeline's add_noise.
    z = torch.from_numpy(torch_engine.numpy(torch_engine.encode(np.stack(pixels))))
    monkeypatch.setattr(img2img_module, "randn_tensor", lambda shape, **kw: torch.from_numpy(noise).reshape(shape))
    pipe = StableDiffusionImg2ImgPipeline.from_pretrained(tiny_model, safety_checker=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    theirs = pipe(prompts, image=z, strength=strength, num_inference_steps=STEPS, guidance_scale=7.5,
                  output_type="latent").images.numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    # The init image matters (lower strength: more so).
    other, _ = Img2ImgStart(pixels[::-1], strength, 2)(torch_engine, range(2), noise, timesteps(STEPS))
    assert np.abs(torch_engine.numpy(sample(torch_engine, prompts, other, kept)) - ours).max() > 1e-3


def test_mean_image_is_the_per_pixel_mean_of_the_preprocessed(images):
    paths = [images["s0"], images["s1"], images["c0"]]
    expected = (preprocess(paths[0], 32).astype(np.float64) + preprocess(paths[1], 32) + preprocess(paths[2], 32)) / 3
    mean = mean_image(paths, 32)
    assert mean.shape == (3, 32, 32) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, expected, atol=1e-6)


def test_cli_init_mean_equals_the_library_and_init_image_counts(tiny_model, torch_engine, images, tmp_path):
    from jstyleid.pipelines.generate import generate_images

    common = ["--model", str(tiny_model), "--device", "cpu", "--dtype", "float32", "--ddim-steps", str(STEPS),
              "--resolution", str(RES), "--prompt", "a cat", "a bird", "--strength", "0.6"]
    outs = [str(tmp_path / "cat.png"), str(tmp_path / "bird.png")]
    refs = [str(images["s0"]), str(images["s1"])]
    assert main(["generate", *common, "--out", *outs, "--init-mean", *refs]) == 0
    mine = [tmp_path / "lib_cat.png", tmp_path / "lib_bird.png"]
    generate_images(torch_engine, ["a cat", "a bird"], mine, steps=STEPS, resolution=RES,
                    init=Img2ImgStart([mean_image(refs, RES)], 0.6, 2))
    for a, b in zip(outs, mine):
        assert np.abs(np.asarray(Image.open(a)).astype(int) - np.asarray(Image.open(b))).max() <= 1
    plain = tmp_path / "plain.png"
    assert main(["generate", *common[:-2], "--out", str(plain), str(tmp_path / "plain2.png")]) == 0
    assert np.abs(np.asarray(Image.open(plain)).astype(int) - np.asarray(Image.open(outs[0]))).max() > 8


@pytest.mark.parametrize("extra, problem", [
    (["--init-image", "IMG", "IMG", "IMG"], "3 init images for 2 prompts"),
    (["--init-image", "IMG", "--strength", "0.1"], "leaves no step"),
    (["--init-image", "IMG", "--strength", "1.5"], "outside (0, 1]"),
    (["--init-image", "MISSING"], "image file not found"),
])
def test_bad_img2img_inputs_give_one_line(tiny_model, images, tmp_path, capsys, extra, problem):
    extra = [str(images["c0"]) if a == "IMG" else str(tmp_path / "none.png") if a == "MISSING" else a for a in extra]
    code = main(["generate", "--model", str(tiny_model), "--device", "cpu", "--ddim-steps", str(STEPS), "--resolution",
                 str(RES), "--prompt", "a", "b", "--out", str(tmp_path / "a.png"), str(tmp_path / "b.png"), *extra])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and problem in lines[-1] and not any("Traceback" in line for line in lines)
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()
