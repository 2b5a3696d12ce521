"""Inversion and injection against the spec, checked with diffusers' schedulers and U-Net calls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jstyleid.storage.cache import open_caches
from jstyleid.engines import load_engine
from jstyleid.engines.base import Injection
from jstyleid.pipelines.inject import inject_images
from jstyleid.pipelines.invert import invert_images
from jstyleid.core.schedule import timesteps
from jstyleid.core.styleid import _stored_features, adain, inject

STEPS, RES = 12, 64


def _invert(engine, images, tmp_path, role, tag="", **kw):
    outs = [tmp_path / f"{role}{tag}{i}.h5" for i in range(len(images))]
    invert_images(engine, images, outs, role=role, steps=kw.pop("steps", STEPS), resolution=RES, **kw)
    return outs


def test_inversion_follows_the_spec(torch_engine, images, tmp_path):
    """x_0 = z; x_{i+1} = DDIMInverseScheduler.step(unet(x_i, tau_i), tau_{i+1}, x_i)."""
    from diffusers import DDIMInverseScheduler

    from jstyleid.storage.inputs import preprocess

    [path] = _invert(torch_engine, [images["c0"]], tmp_path, "content", feature_dtype="float32")
    [cache] = open_caches([path], "content")
    e = torch_engine
    z = e.encode(preprocess(images["c0"], RES)[None])
    cond = e.text([""])
    inverse = DDIMInverseScheduler.from_pretrained(e.model_folder / "scheduler")
    inverse.set_timesteps(STEPS)
    taus = timesteps(STEPS)
    x = z
    for i, tau in enumerate(taus):
        np.testing.assert_allclose(cache.latent(i), e.numpy(x)[0], atol=1e-5)
        with torch.no_grad():
            out = e.unet_model(x, tau, encoder_hidden_states=cond).sample
        if i < STEPS - 1:
            x = inverse.step(out, taus[i + 1], x).prev_sample
    assert cache.timesteps == taus


def test_no_layers_no_adain_is_plain_ddim_sampling(tiny_model, images, tmp_path):
    from diffusers import DDIMScheduler

    engine = load_engine("torch", str(tiny_model), device="cpu", dtype="float32", layers=())
    content = _invert(engine, [images["c0"]], tmp_path, "content")
    style = _invert(engine, [images["s0"]], tmp_path, "style")
    latent = inject(engine, open_caches(content, "content"), open_caches(style, "style"), engine.text([""]),
                    gamma=0.75, temperature=1.5, use_adain=False)
    scheduler = DDIMScheduler.from_pretrained(tiny_model / "scheduler")
    scheduler.set_timesteps(STEPS)
    [cache] = open_caches(content, "content")
    x = torch.from_numpy(cache.latent(STEPS - 1))[None]
    with torch.no_grad():
        for t in scheduler.timesteps:
            out = engine.unet_model(x, t, encoder_hidden_states=engine.text([""])).sample
            x = scheduler.step(out, t, x).prev_sample
    np.testing.assert_allclose(engine.numpy(latent), x.numpy(), atol=1e-5)


def test_content_as_own_style_reproduces_last_inversion_step(torch_engine, images, tmp_path):
    """gamma = 1, T = 1, AdaIN off, content = style: the first sampling step is the last inversion step."""
    e = torch_engine
    content = open_caches(_invert(e, [images["c0"]], tmp_path, "content", feature_dtype="float32"), "content")
    style = open_caches(_invert(e, [images["c0"]], tmp_path, "style", feature_dtype="float32"), "style")
    last = STEPS - 1
    x = e.tensor(content[0].latent(last)[None])
    cond = e.text([""])
    plain, _ = e.unet(x, timesteps(STEPS)[last], cond)
    injected, _ = e.unet(x, timesteps(STEPS)[last], cond,
                         inject=Injection(1, 1.0, 1.0, next(_stored_features(e, content, style, [last]))))
    np.testing.assert_allclose(e.numpy(injected), e.numpy(plain), atol=1e-5)
    # ...and the injection is not a no-op in general (the check above could not pass by accident):
    other, _ = e.unet(x, timesteps(STEPS)[last], cond,
                      inject=Injection(1, 0.5, 1.5, next(_stored_features(e, content, style, [last]))))
    assert np.abs(e.numpy(other) - e.numpy(plain)).max() > 1e-4


@pytest.mark.parametrize("feature_dtype,tolerance", [("float32", 1e-4), ("float16", 1e-3)])
def test_recompute_equals_stored_features(torch_engine, images, tmp_path, feature_dtype, tolerance):
    e = torch_engine
    content = open_caches(_invert(e, [images["c0"], images["c1"]], tmp_path, "content",
                                  feature_dtype=feature_dtype), "content")
    styles = open_caches(_invert(e, [images["s0"], images["s1"]], tmp_path, "style",
                                 feature_dtype=feature_dtype), "style")
    cond = e.text([""])
    stored = inject(e, content, styles, cond, gamma=0.75, temperature=1.5, mode="stored")
    recomputed = inject(e, content, styles, cond, gamma=0.75, temperature=1.5, mode="recompute")
    np.testing.assert_allclose(e.numpy(stored), e.numpy(recomputed), atol=tolerance)
    # Feature-free caches alone (--features recompute) give the same result.
    bare_c = open_caches(_invert(e, [images["c0"], images["c1"]], tmp_path, "content", "bare", features=False),
                         "content")
    bare_s = open_caches(_invert(e, [images["s0"], images["s1"]], tmp_path, "style", "bare", features=False),
                         "style")
    assert not bare_c[0].layers
    bare = inject(e, bare_c, bare_s, cond, gamma=0.75, temperature=1.5, mode="recompute")
    np.testing.assert_allclose(e.numpy(bare), e.numpy(recomputed), atol=1e-5)


def test_batched_calls_equal_one_at_a_time(torch_engine, images, tmp_path):
    e = torch_engine
    together = _invert(e, [images["c0"], images["c1"]], tmp_path, "content", "b", feature_dtype="float32",
                       batch_size=2)
    alone = _invert(e, [images["c0"], images["c1"]], tmp_path, "content", "a", feature_dtype="float32",
                    batch_size=1)
    layer = e.injected_layers[0]
    for a, b in zip(open_caches(together, "content"), open_caches(alone, "content")):
        np.testing.assert_allclose(a.latent(STEPS - 1), b.latent(STEPS - 1), atol=1e-5)
        np.testing.assert_allclose(a.feature(layer, "q", 3), b.feature(layer, "q", 3), atol=1e-5)
    styles = open_caches(_invert(e, [images["s0"]], tmp_path, "style"), "style")
    contents = open_caches(together, "content")
    outs = {n: [tmp_path / f"{n}{i}.png" for i in range(2)] for n in ("b", "a")}
    lat = {n: [tmp_path / f"{n}{i}.npy" for i in range(2)] for n in ("b", "a")}
    for name, size in (("b", 2), ("a", 1)):
        inject_images(e, contents, styles, outs[name], lat[name], gamma=0.75, temperature=1.5, use_adain=True,
                mode="stored", batch_size=size)
    for a, b in zip(lat["b"], lat["a"]):
        np.testing.assert_allclose(np.load(a), np.load(b), atol=1e-5)
        assert np.load(a).shape == (4, RES // 8, RES // 8) and np.load(a).dtype == np.float32


def test_adain_matches_the_formula_and_pools_references():
    rng = np.random.default_rng(0)
    c = rng.normal(2.0, 3.0, (2, 4, 8, 8))
    s1, s2 = rng.normal(-1, 0.5, (4, 8, 8)), rng.normal(1, 2.0, (4, 8, 8))
    out = adain(c, [s1])
    np.testing.assert_allclose(out.mean(axis=(2, 3)), np.broadcast_to(s1.mean(axis=(1, 2)), (2, 4)), atol=1e-4)
    np.testing.assert_allclose(out.std(axis=(2, 3)), np.broadcast_to(s1.std(axis=(1, 2)), (2, 4)), rtol=1e-4)
    pooled = np.concatenate([s1, s2], axis=-1)
    out2 = adain(c, [s1, s2])
    np.testing.assert_allclose(out2.std(axis=(2, 3))[0], pooled.std(axis=(1, 2)), rtol=1e-4)
    assert not np.allclose(out2.std(axis=(2, 3))[0], (s1.std(axis=(1, 2)) + s2.std(axis=(1, 2))) / 2, rtol=1e-3)


SETTINGS = [{}, dict(gamma=0.3, temperature=1.8), dict(layers="sd21_7to11", refs_mode="rotate", adain=False)]


def _flags(setting: dict) -> list[str]:
    """The command-line options of one --settings entry (what a separate invocation passes)."""
    flags = [f for key in ("gamma", "temperature") if key in setting for f in (f"--{key}", str(setting[key]))]
    flags += ["--layers", setting["layers"]] if "layers" in setting else []
    flags += ["--refs-mode", setting["refs_mode"]] if "refs_mode" in setting else []
    return flags + ([] if setting.get("adain", True) else ["--no-adain"])


def test_settings_file_equals_separate_invocations(tiny_model, torch_engine, images, tmp_path, caplog):
    """One `inject --settings` run (engine loaded once, layers switched between settings) writes the PNGs of
    one invocation per setting, byte for byte; with a store, a setting added later computes only its images."""
    import json
    import logging

    from jstyleid.cli import main
    from jstyleid.storage.store import PLAN_LINE

    caplog.set_level(logging.INFO)
    contents = _invert(torch_engine, [images["c0"], images["c1"]], tmp_path, "content", steps=3)
    styles = _invert(torch_engine, [images["s0"], images["s1"]], tmp_path, "style", steps=3)
    base = ["inject", "--model", str(tiny_model), "--device", "cpu", "--dtype", "float32",
            "--content-caches", *map(str, contents), "--style-caches", *map(str, styles)]
    alone = [[tmp_path / "alone" / str(k) / f"p{i}.png" for i in range(2)] for k in range(len(SETTINGS))]
    for setting, outs in zip(SETTINGS, alone):
        assert main(base + _flags(setting) + ["--out", *map(str, outs)]) == 0
    together = [[tmp_path / "together" / str(k) / f"p{i}.png" for i in range(2)] for k in range(len(SETTINGS))]
    entries = [dict(setting, out=[str(p) for p in outs]) for setting, outs in zip(SETTINGS, together)]
    store = ["--store", str(tmp_path / "store")]
    for count in (2, 3):  # the third setting added to a run that made the first two
        (tmp_path / "settings.json").write_text(json.dumps(entries[:count]))
        caplog.clear()
        assert main(base + store + ["--settings", str(tmp_path / "settings.json")]) == 0
    counts = [tuple(map(int, found)) for found in PLAN_LINE.findall(caplog.text)]
    assert sum(reused for reused, _ in counts) == 4 and sum(todo for _, todo in counts) == 2
    for a, b in zip(sum(alone, []), sum(together, [])):
        assert a.read_bytes() == b.read_bytes(), b
    assert len({p.read_bytes() for p in sum(alone, [])[::2]}) == len(SETTINGS)  # the settings differ


@pytest.mark.parametrize("entry, key, problem", [
    (dict(gamma="high"), "gamma", "is not a number"),
    (dict(refs_mode="all"), "refs_mode", "is not pool or rotate"),
    (dict(out=["one.png"]), "out", "is not a list of 2 file names"),
    (dict(gama=0.5), "gama", "unknown key"),
])
def test_settings_file_refuses_a_bad_key_in_one_line(tiny_model, tmp_path, capsys, entry, key, problem):
    import json

    from jstyleid.cli import main

    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps([dict(out=["a.png", "b.png"]), {"out": ["c.png", "d.png"], **entry}]))
    code = main(["inject", "--model", str(tiny_model), "--content-caches", "c0.h5", "c1.h5", "--style-caches", "s.h5",
                 "--settings", str(settings)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{settings} [1].{key}" in err and problem in err
