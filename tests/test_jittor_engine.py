"""The Jittor engine against the torch engine on the tiny preset (CPU, float32, same weights).

Networks through the Engine methods match to 1e-4; inversion caches and injected latents (both feature
modes) to 1e-3; LoRA training: loss and gradients to 1e-4 relative, weights after 10 steps to 1e-3
relative; a LoRA trained by either engine gives the same images on both (1e-3).
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from jstyleid.storage.cache import open_caches
from jstyleid.cli import main
from jstyleid.training.lora import LORA_FILE, initial_lora, noisy_and_target, snapshot_file, train_lora
from jstyleid.engines import load_engine
from jstyleid.engines.base import Injection
from jstyleid.engines.jittor import import_jittor
from jstyleid.errors import InputError
from jstyleid.core.sampling import initial_noise, sample
from jstyleid.pipelines.inject import inject_images
from jstyleid.storage.inputs import preprocess, style_images
from jstyleid.pipelines.invert import invert_images
from jstyleid.core.schedule import timesteps

pytestmark = [
    pytest.mark.jittor,
    pytest.mark.skipif(importlib.util.find_spec("jittor") is None, reason="jittor is not installed"),
]

NET_TOL, STAGE_TOL, GRAD_RTOL, WEIGHT_RTOL = 1e-4, 1e-3, 1e-4, 1e-3
STEPS, RES = 5, 64
ENGINES = ("torch", "jittor")
PROMPT = "style_07"


def _picture(path, seed: int):
    """A random picture of coloured blocks."""
    from PIL import Image

    blocks = np.random.default_rng(seed).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    Image.fromarray(blocks).resize((80, 64), Image.NEAREST).save(path)
    return path


def _engine(name, model, **kw):
    return load_engine(name, str(model), device="cpu", dtype="float32", **kw)


@pytest.fixture(scope="module")
def engines(tiny_model, torch_engine):
    return {"torch": torch_engine, "jittor": _engine("jittor", tiny_model)}


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())


def _relative(a, b) -> float:
    """Largest deviation relative to the reference's largest entry."""
    return _max_diff(a, b) / max(float(np.abs(b).max()), 1e-30)


def test_networks_match_the_torch_engine(engines, images):
    t, j = engines["torch"], engines["jittor"]
    assert j.fingerprint == t.fingerprint  # caches are interchangeable
    assert (j.scaling_factor, j.vae_scale_factor) == (t.scaling_factor, t.vae_scale_factor)
    assert all(json.loads(json.dumps(t.unet_config[key])) == value for key, value in j.unet_config.items())
    pixels = np.stack([preprocess(images[n], RES) for n in ("c0", "s0")])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, RES // 8, RES // 8), dtype=np.float32)
    out = {}
    for e in (t, j):
        z = e.encode(pixels)
        cond = e.text(["", "a cat"])
        unet_out, recorded = e.unet(e.tensor(x), 981, cond, record="qkv")
        decoded = e.vae.decode(e.tensor(x) / e.scaling_factor)  # before Engine.decode rounds to uint8
        out[e.name] = dict(
            z=e.numpy(z), text=e.numpy(cond), unet=e.numpy(unet_out),
            decoded=e.numpy(getattr(decoded, "sample", decoded)), image=e.decode(e.tensor(x)),
            features={layer: {n: e.numpy(v) for n, v in named.items()} for layer, named in recorded.items()})
    mine, ref = out["jittor"], out["torch"]
    for key in ("z", "text", "unet", "decoded"):
        assert _max_diff(mine[key], ref[key]) < NET_TOL, key
    assert mine["image"].dtype == np.uint8 and mine["image"].shape == ref["image"].shape
    assert _max_diff(mine["image"], ref["image"]) <= 1  # a float 1e-6 apart may round the other way
    assert set(mine["features"]) == set(t.injected_layers)
    for layer, named in ref["features"].items():
        assert set(mine["features"][layer]) == set("qkv")
        for n, value in named.items():
            assert mine["features"][layer][n].shape == value.shape
            assert _max_diff(mine["features"][layer][n], value) < NET_TOL, (layer, n)


def test_one_injected_unet_call_matches_in_both_modes(engines):
    """Stored features, and the recompute row layout [x (n), contents (n), styles (R)], with n = R = 2."""
    rng = np.random.default_rng(1)
    x, contents, styles = (rng.standard_normal((2, 4, 8, 8), dtype=np.float32) for _ in range(3))
    tau = 401
    results = {}
    for name, e in engines.items():
        cond = e.text([""])
        _, q = e.unet(e.tensor(contents), tau, cond, record="q")
        _, kv = e.unet(e.tensor(styles), tau, cond, record="kv")
        features = {layer: (q[layer]["q"], kv[layer]["k"].reshape((1, -1, kv[layer]["k"].shape[-1])),
                            kv[layer]["v"].reshape((1, -1, kv[layer]["v"].shape[-1])))
                    for layer in e.injected_layers}
        stored, _ = e.unet(e.tensor(x), tau, cond, inject=Injection(2, 0.75, 1.5, features))
        batch = e.tensor(np.concatenate([x, contents, styles]))
        recomputed, _ = e.unet(batch, tau, cond, inject=Injection(2, 0.75, 1.5))
        plain, _ = e.unet(e.tensor(x), tau, cond)
        results[name] = [e.numpy(stored), e.numpy(recomputed), e.numpy(plain)]
    (stored, recomputed, plain), (ref_stored, ref_recomputed, _) = results["jittor"], results["torch"]
    assert _max_diff(stored, ref_stored) < NET_TOL
    assert _max_diff(recomputed, ref_recomputed) < NET_TOL
    assert _max_diff(recomputed[:2], stored) < NET_TOL
    assert _max_diff(stored, plain) > 1e-3  # the injection does something


@pytest.fixture(scope="module")
def caches(engines, tmp_path_factory):
    """Both engines' caches (float32 features) of contents c0, c1 and styles s0, s1."""
    folder = tmp_path_factory.mktemp("jittor_caches")
    paths = {n: _picture(folder / f"{n}.png", seed=i) for i, n in enumerate(["c0", "c1", "s0", "s1"])}
    out = {}
    for name, e in engines.items():
        out[name] = {}
        for role, images in (("content", ["c0", "c1"]), ("style", ["s0", "s1"])):
            files = [folder / f"{name}-{n}.h5" for n in images]
            invert_images(e, [paths[n] for n in images], files, role=role, steps=STEPS, resolution=RES,
                          feature_dtype="float32", batch_size=2)
            out[name][role] = files
    return out


def test_inversion_caches_match(caches, engines):
    for role in ("content", "style"):
        for mine, ref in zip(open_caches(caches["jittor"][role], role), open_caches(caches["torch"][role], role)):
            assert mine.timesteps == ref.timesteps == timesteps(STEPS)
            assert mine.layers == ref.layers
            for i in range(STEPS):
                assert _max_diff(mine.latent(i), ref.latent(i)) < STAGE_TOL, (role, i)
                for layer in ref.layers:
                    for n in ("q",) if role == "content" else ("k", "v"):
                        assert _max_diff(mine.feature(layer, n, i), ref.feature(layer, n, i)) < STAGE_TOL


@pytest.mark.parametrize("mode", ["stored", "recompute"])
def test_injected_latents_match(caches, engines, tmp_path, mode):
    """Each engine stylizes from its own caches (two contents, two pooled style references)."""
    latents, pngs = {}, {}
    for name, e in engines.items():
        contents = open_caches(caches[name]["content"], "content")
        styles = open_caches(caches[name]["style"], "style")
        pngs[name] = [tmp_path / f"{name}{i}.png" for i in range(2)]
        npys = [tmp_path / f"{name}{i}.npy" for i in range(2)]
        inject_images(e, contents, styles, pngs[name], npys, gamma=0.75, temperature=1.5, use_adain=True, mode=mode,
                batch_size=2)
        latents[name] = np.stack([np.load(p) for p in npys])
    assert latents["jittor"].shape == (2, 4, RES // 8, RES // 8)
    assert _max_diff(latents["jittor"], latents["torch"]) < STAGE_TOL
    assert all(p.is_file() for p in pngs["jittor"])


def test_cli_invert_and_inject_with_torch_caches(caches, tiny_model, images, tmp_path):
    """`--engine jittor` on the command line; the jittor engine reads the torch engine's caches."""
    out = tmp_path / "c.h5"
    code = main(["invert", "--engine", "jittor", "--model", str(tiny_model), "--device", "cpu", "--images",
                 str(images["c0"]), "--role", "content", "--out", str(out), "--ddim-steps", str(STEPS),
                 "--resolution", str(RES)])
    assert code == 0
    [cache] = open_caches([out], "content")
    assert cache.steps == STEPS and cache.layers
    torch_caches = caches["torch"]
    outs = {name: (tmp_path / f"{name}.png", tmp_path / f"{name}.npy") for name in ENGINES}
    for name, (png, npy) in outs.items():
        code = main(["inject", "--engine", name, "--model", str(tiny_model), "--device", "cpu",
                     "--content-caches", str(torch_caches["content"][0]),
                     "--style-caches", *map(str, torch_caches["style"]), "--out", str(png), "--latent-out", str(npy)])
        assert code == 0
    assert _max_diff(np.load(outs["jittor"][1]), np.load(outs["torch"][1])) < STAGE_TOL


def test_bad_settings_give_input_errors(tiny_model, tmp_path):
    # Through the engine's import: a bare `import jittor` first in a worker skips its environment
    # (an nvcc on PATH without a driver then makes Jittor open libcudart and fail).
    jittor = import_jittor()

    with pytest.raises(InputError, match="--layers"):
        _engine("jittor", tiny_model, layers=["up_blocks.9.attentions.0.transformer_blocks.0.attn1"])
    with pytest.raises(InputError, match="--dtype"):
        load_engine("jittor", str(tiny_model), device="cpu", dtype="float16")
    with pytest.raises(InputError, match="LoRA file not found"):
        _engine("jittor", tiny_model, lora=str(tmp_path / "missing.safetensors"))
    kohya = {"lora_unet_down_blocks_0.lora_down.weight": np.zeros((4, 32), np.float32)}
    save_file(kohya, tmp_path / "kohya.safetensors")
    with pytest.raises(InputError, match="cannot load LoRA weights .unknown key"):
        _engine("jittor", tiny_model, lora=str(tmp_path / "kohya.safetensors"))
    if not jittor.has_cuda:
        with pytest.raises(InputError, match="no usable CUDA"):
            load_engine("jittor", str(tiny_model), device="cuda")


# -- LoRA ------------------------------------------------------------------------------------------
RANK, ALPHA = 4, 8.0  # alpha != rank: the scale alpha / rank must be applied (and folded in when saving)
# At 64 px the mid-block self-attention sees one token: its q and k get no gradient (torch: 1e-12 noise,
# Jittor: exactly 0), so per-layer relative errors are meaningless there. 128 px gives it four.
LORA_RES = 128


@pytest.mark.parametrize("prompts", [[PROMPT, PROMPT], ["style_03", "style_11"]], ids=["one", "per-sample"])
def test_lora_loss_and_gradients_match(tiny_model, prompts):
    """Per sample: a LoRA shared by styles conditions each image on its own style's prompt."""
    trainers = {name: _engine(name, tiny_model).lora_trainer(rank=RANK, alpha=ALPHA, lr=1e-3)
                for name in ENGINES}
    shapes = {key: value.shape for key, value in trainers["torch"].lora_state_dict().items()}
    assert {k: v.shape for k, v in trainers["jittor"].lora_state_dict().items()} == shapes
    # Both factors non-zero, so that every LoRA weight gets a gradient.
    rng = np.random.default_rng(0)
    initial = {key: (0.05 * rng.standard_normal(shape)).astype(np.float32) for key, shape in shapes.items()}
    x0, noise = (rng.standard_normal((2, 4, LORA_RES // 8, LORA_RES // 8), dtype=np.float32) for _ in range(2))
    t = np.array([150, 800])
    x_t, target = noisy_and_target(trainers["torch"].engine.schedule, x0, noise, t)
    losses, grads = {}, {}
    for name, trainer in trainers.items():
        trainer.load_lora_state_dict(initial)
        losses[name] = trainer.step(x_t, t, target, trainer.condition(prompts))
        grads[name] = trainer.gradients()
    assert abs(losses["jittor"] - losses["torch"]) <= GRAD_RTOL * losses["torch"]
    assert set(grads["jittor"]) == set(grads["torch"]) == set(shapes)
    worst = max(_relative(grads["jittor"][k], grads["torch"][k]) for k in shapes)
    assert worst < GRAD_RTOL, worst


@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """10 steps of train_lora on each engine with the same seed: {engine: (folder, losses)}."""
    style_dir = tmp_path_factory.mktemp("styles") / "07"
    (style_dir / "images").mkdir(parents=True)
    for k in range(2):
        _picture(style_dir / "images" / f"{k}.png", seed=10 + k)
    out = {}
    for name in ENGINES:
        folder = tmp_path_factory.mktemp(f"lora_{name}")
        losses = train_lora(_engine(name, tiny_model), style_images(style_dir), folder, prompt=PROMPT, steps=10,
                            rank=RANK, alpha=ALPHA, lr=1e-3, resolution=LORA_RES, seed=0)
        out[name] = folder, losses
    return out


def test_ten_training_steps_match(trained):
    """The weights' change over 10 steps agrees (norm over all down, all up weights) to 1e-3 relative.

    Not element by element: AdamW's first steps move every weight by about lr whatever the size of its
    gradient, so a 1e-5 relative gradient difference on an element with a tiny gradient becomes a 1e-2
    relative difference of that element (jittor.optim.AdamW itself equals torch's to 1e-7).
    """
    (mine, my_losses), (ref, ref_losses) = trained["jittor"], trained["torch"]
    np.testing.assert_allclose(my_losses, ref_losses, rtol=1e-3)
    mine, ref = load_file(mine / LORA_FILE), load_file(ref / LORA_FILE)
    assert set(mine) == set(ref)
    # train_lora's first draws: the initial weights (up = 0; the saved up weights carry alpha / rank)
    initial = initial_lora({key.removeprefix("unet."): value.shape for key, value in ref.items()},
                           np.random.default_rng(0))
    for factor in ("down", "up"):
        keys = sorted(key for key in ref if f".lora.{factor}." in key)
        start = np.concatenate([initial[key.removeprefix("unet.")].ravel() for key in keys])
        my_change, ref_change = (np.concatenate([w[key].ravel() for key in keys]) - start * (factor == "down")
                                 for w in (mine, ref))
        error = np.linalg.norm(my_change - ref_change) / np.linalg.norm(ref_change)
        assert error < WEIGHT_RTOL, (factor, error)


def test_a_shared_lora_with_snapshots_trains_on_jittor(tiny_model, tmp_path):
    """Two styles' images in batches of two, each its own token, and a snapshot equal to a training
    stopped at its step (the same engine: bit for bit but for float reductions)."""
    images = []
    for k, style in enumerate(("03", "11")):
        (tmp_path / style / "images").mkdir(parents=True)
        _picture(tmp_path / style / "images" / "0.png", seed=20 + k)
        images += style_images(tmp_path / style)
    prompts = ["style_03", "style_11"]

    def train(out, steps, **levers):
        return train_lora(_engine("jittor", tiny_model), images, out, prompt=prompts, steps=steps, rank=RANK,
                          alpha=ALPHA, lr=1e-3, batch_size=2, resolution=64, seed=0, **levers)

    train(tmp_path / "shared", 2, snapshot_steps=[1])
    train(tmp_path / "alone", 1)
    snapshot, alone = load_file(snapshot_file(tmp_path / "shared", 1)), load_file(tmp_path / "alone" / LORA_FILE)
    assert max(np.abs(snapshot[k] - alone[k]).max() for k in alone) <= 1e-5


def test_lora_from_either_engine_generates_the_same_images(tiny_model, trained):
    noise = initial_noise(0, "a cat", (4, RES // 8, RES // 8))[None]
    taus = timesteps(3)

    def latent(engine_name, lora=None):
        e = _engine(engine_name, tiny_model, lora=lora)
        return e.numpy(sample(e, [f"a cat in {PROMPT}"], noise, taus, guidance=7.5))

    base = latent("torch")
    for trainer_name in ENGINES:
        lora = str(trained[trainer_name][0])
        on_torch, on_jittor = latent("torch", lora), latent("jittor", lora)
        assert _max_diff(on_jittor, on_torch) < STAGE_TOL, trainer_name
        assert _max_diff(on_torch, base) > 10 * STAGE_TOL  # the LoRA changes the images
