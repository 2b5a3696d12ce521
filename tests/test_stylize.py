"""`jstyleid stylize`: every (content, style) pair in memory, equal to invert + inject through caches."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from jstyleid.storage.cache import open_caches
from jstyleid.cli import main
from jstyleid.pipelines.inject import inject_images
from jstyleid.pipelines.invert import invert_images
from jstyleid.reporting.plots import LABEL_HEIGHT
from jstyleid.pipelines.stylize import stylize_pairs

STEPS, RES = 3, 64
INJECTION = dict(gamma=0.75, temperature=1.5, use_adain=True)


def test_stylize_equals_invert_and_inject_through_caches(torch_engine, images, tmp_path):
    e, contents, styles = torch_engine, [images["c0"], images["c1"]], [images["s0"], images["s1"]]
    stylize_pairs(e, contents, styles, tmp_path / "out", tmp_path / "lat", steps=STEPS, resolution=RES,
                  batch_size=2, **INJECTION)
    assert not list(tmp_path.rglob("*.h5"))  # nothing went through a cache file

    def through_caches(tag, **features):
        caches = {}
        for role, group in (("content", contents), ("style", styles)):
            outs = [tmp_path / tag / f"{role}{i}.h5" for i in range(len(group))]
            invert_images(e, group, outs, role=role, steps=STEPS, resolution=RES, batch_size=2, **features)
            caches[role] = open_caches(outs, role)
        mode = "stored" if features.get("features", True) else "recompute"
        for s, style in zip(styles, caches["style"]):
            names = [f"{c.stem}__{s.stem}" for c in contents]
            inject_images(e, caches["content"], [style], [tmp_path / tag / f"{n}.png" for n in names],
                    [tmp_path / tag / f"{n}.npy" for n in names], mode=mode, batch_size=2, **INJECTION)

    through_caches("stored")  # what invert + inject do by default: float16 features on disk
    through_caches("bare", features=False)  # invert --no-features: latents only, inject recomputes
    pairs = [f"{c.stem}__{s.stem}" for c in contents for s in styles]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{n}.png" for n in pairs)
    for name in pairs:
        latent = np.load(tmp_path / "lat" / f"{name}.npy")
        np.testing.assert_allclose(latent, np.load(tmp_path / "stored" / f"{name}.npy"), atol=1e-3)
        np.testing.assert_allclose(latent, np.load(tmp_path / "bare" / f"{name}.npy"), atol=1e-5)
        ours, theirs = (np.asarray(Image.open(tmp_path / d / f"{name}.png"), np.int16) for d in ("out", "bare"))
        assert np.abs(ours - theirs).max() <= 1  # the same latents decode to the same picture
    # Each pair has its own style: the two styles of a content do not give the same picture.
    first, second = (np.load(tmp_path / "lat" / f"{name}.npy") for name in pairs[:2])
    assert np.abs(first - second).max() > 1e-3


def test_stylize_command_names_pairs_and_draws_the_grid(tiny_model, images, tmp_path):
    folder = tmp_path / "contents"
    folder.mkdir()
    for name in ("c0", "c1"):
        shutil.copy(images[name], folder)
    s2 = shutil.copy(images["s0"], tmp_path / "s2.png")
    out = tmp_path / "out"
    assert main(["stylize", "--model", str(tiny_model), "--device", "cpu", "--content-images", str(folder),
                 "--style-images", str(images["s0"]), str(images["s1"]), str(s2), "--out-dir", str(out), "--grid",
                 "--ddim-steps", str(STEPS), "--resolution", str(RES)]) == 0
    pairs = {f"{c}__{s}.png" for c in ("c0", "c1") for s in ("s0", "s1", "s2")}
    assert {p.name for p in out.iterdir()} == pairs | {"grid.png"}
    grid = Image.open(out / "grid.png").convert("RGB")
    assert grid.size == (4 * RES, 3 * (RES + LABEL_HEIGHT))  # header column + 3 styles, header row + 2 contents
    # Row 2 (c1), column 3 (s1) holds c1__s1.png; the header row holds the style as the model saw it.
    tile = RES + LABEL_HEIGHT
    cell = np.asarray(grid.crop((2 * RES, 2 * tile, 3 * RES, 2 * tile + RES)))
    np.testing.assert_array_equal(cell, np.asarray(Image.open(out / "c1__s1.png").convert("RGB")))
    header = np.asarray(grid.crop((RES, 0, 2 * RES, RES)), np.int16)
    seen = np.asarray(Image.open(images["s0"]).convert("RGB").crop((8, 0, 72, 64)), np.int16)  # 80x64: centre crop
    assert np.abs(header - seen).max() <= 1
    # s2 is a copy of s0: the same style gives the same pictures.
    same = [np.asarray(Image.open(out / f"c0__{s}.png")) for s in ("s0", "s2")]
    np.testing.assert_array_equal(*same)


@pytest.mark.parametrize("problem", ["missing", "empty folder", "same name", "not an image", "out is a file"])
def test_stylize_refuses_bad_input_in_one_line_before_loading_the_model(images, tmp_path, capsys, problem):
    content, style, out = [str(images["c0"])], [str(images["s0"])], str(tmp_path / "out")
    if problem == "missing":
        content, where = [str(tmp_path / "nope.png")], tmp_path / "nope.png"
    elif problem == "empty folder":
        (tmp_path / "empty").mkdir()
        style, where = [str(tmp_path / "empty")], tmp_path / "empty"
    elif problem == "same name":
        (tmp_path / "other").mkdir()
        shutil.copy(images["c0"], tmp_path / "other" / "c0.jpg")
        content, where = [str(images["c0"]), str(tmp_path / "other")], tmp_path / "other" / "c0.jpg"
    elif problem == "not an image":
        (tmp_path / "bad.png").write_text("not a picture")
        style, where = [str(tmp_path / "bad.png")], tmp_path / "bad.png"
    else:
        (tmp_path / "out").write_text("")
        where = tmp_path / "out"
    # A model that does not exist: the refusal must come before any attempt to load one.
    code = main(["stylize", "--model", str(tmp_path / "no-model"), "--content-images", *content,
                 "--style-images", *style, "--out-dir", out, "--ddim-steps", str(STEPS), "--resolution", str(RES)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(where) in err[0], err
