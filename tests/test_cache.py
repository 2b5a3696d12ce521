"""HDF5 cache format v1: schema round trip and refusal of caches that do not fit."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import write_images

from jstyleid.storage.cache import FORMAT, check_compatible, open_caches
from jstyleid.cli import main
from jstyleid.errors import InputError
from jstyleid.storage.inputs import sha256_file
from jstyleid.pipelines.invert import invert_images

STEPS, RES = 5, 64


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """conftest's test images, written once for this module: the caches made of them are shared too."""
    return write_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def caches(torch_engine, images, tmp_path_factory):
    """A content cache of c0 and a style cache of s0, made once: the tests only read them."""
    folder, made = tmp_path_factory.mktemp("caches"), {}
    for role, key in (("content", "c0"), ("style", "s0")):
        made[role] = folder / f"{role}.h5"
        invert_images(torch_engine, [images[key]], [made[role]], role=role, steps=STEPS, resolution=RES)
    return made


def test_schema_round_trip(torch_engine, images, caches):
    with h5py.File(caches["content"], "r") as f:
        attrs = f.attrs
        assert attrs["format"] == FORMAT and isinstance(attrs["format"], str)
        assert attrs["role"] == "content" and isinstance(attrs["model"], str)
        assert attrs["model"] == torch_engine.fingerprint
        assert list(attrs["timesteps"]) == [1, 201, 401, 601, 801]
        assert attrs["resolution"] == RES and attrs["prediction_type"] == "v_prediction"
        assert attrs["source_sha256"] == sha256_file(images["c0"])
        assert isinstance(attrs["jstyleid_version"], str)
        assert f["latents"].shape == (STEPS, 4, 8, 8) and f["latents"].dtype == np.float32
        layers = sorted(f["features"].keys())
        assert layers == sorted(torch_engine.injected_layers)
        q = f[f"features/{layers[0]}/q"]
        assert q.dtype == np.float16 and q.shape[0] == STEPS and q.ndim == 3
        assert "k" not in f[f"features/{layers[0]}"]
    with h5py.File(caches["style"], "r") as f:
        group = f[f"features/{torch_engine.injected_layers[-1]}"]
        assert sorted(group.keys()) == ["k", "v"]
    [cache] = open_caches([caches["content"]], "content")
    assert cache.steps == STEPS and cache.layers == layers


def test_refuses_caches_that_do_not_fit(torch_engine, images, caches, tmp_path):
    content, style = caches["content"], caches["style"]
    with pytest.raises(InputError, match="role is 'style', expected 'content'"):
        open_caches([style], "content")
    other_steps = tmp_path / "steps.h5"
    invert_images(torch_engine, [images["c1"]], [other_steps], role="content", steps=STEPS + 1, resolution=RES)
    with pytest.raises(InputError, match="steps.h5: cache has 6 steps"):
        check_compatible(open_caches([content, other_steps], "content"), model=torch_engine.fingerprint,
                         prediction_type="v_prediction", layers=torch_engine.injected_layers)
    other_res = tmp_path / "res.h5"
    invert_images(torch_engine, [images["c1"]], [other_res], role="content", steps=STEPS, resolution=128)
    with pytest.raises(InputError, match="res.h5: cache resolution 128"):
        check_compatible(open_caches([content, other_res], "content"), model=torch_engine.fingerprint,
                         prediction_type="v_prediction", layers=torch_engine.injected_layers)
    with pytest.raises(InputError, match="made with model"):
        check_compatible(open_caches([content], "content"), model="0123456789abcdef",
                         prediction_type="v_prediction", layers=torch_engine.injected_layers)


def test_cli_refuses_truncated_and_foreign_files(tiny_model, caches, tmp_path, capsys):
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(caches["content"].read_bytes()[:2000])
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.attrs["format"] = "something/else"
    out = tmp_path / "out.png"
    for bad, message in ((truncated, "truncated or corrupt"), (foreign, "cache format is 'something/else'")):
        code = main(["inject", "--model", str(tiny_model), "--device", "cpu", "--content-caches", str(bad),
                     "--style-caches", str(caches["style"]), "--out", str(out)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert err[-1].startswith("jstyleid inject: error: ") and str(bad) in err[-1] and message in err[-1]
        assert "Traceback" not in "\n".join(err)
    assert not out.exists() and not list(tmp_path.glob(".out.png*"))


def test_model_change_changes_fingerprint(tiny_model, tmp_path):
    import shutil

    from jstyleid.engines.models import fingerprint

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    before = fingerprint(copy)
    assert fingerprint(copy) == before
    weights = copy / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # one bit of one weight
    weights.write_bytes(bytes(data))
    assert fingerprint(copy) != before


def test_a_failed_background_write_stops_the_inversion_and_leaves_no_file(torch_engine, images, tmp_path,
                                                                         monkeypatch):
    from jstyleid.storage.cache import CacheWriter

    write_step = CacheWriter.write_step
    steps_run = []

    def disk_full_at_step_2(self, i, *args):
        steps_run.append(i)
        if i == 2:
            raise OSError(28, "No space left on device")
        write_step(self, i, *args)

    monkeypatch.setattr(CacheWriter, "write_step", disk_full_at_step_2)
    from jstyleid.errors import DiskFull

    with pytest.raises(DiskFull, match="No space left"):  # atomic_path turns a full disk into one line
        invert_images(torch_engine, [images["c0"]], [tmp_path / "out" / "c.h5"], role="content", steps=STEPS,
                      resolution=RES)
    assert steps_run == [0, 1, 2]  # the inversion stopped at the next step, not at the end
    assert list((tmp_path / "out").iterdir()) == []  # neither the cache nor its temporary file is left
