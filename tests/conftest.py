"""Shared fixtures: the tiny preset model (built once per session) and small test images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    from jstyleid.engines.presets import make_model

    return make_model("tiny", tmp_path_factory.mktemp("models") / "tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_model_epsilon(tmp_path_factory):
    """The tiny preset with an epsilon-prediction scheduler (as sd21-base)."""
    import json

    from jstyleid.engines.presets import make_model

    folder = make_model("tiny", tmp_path_factory.mktemp("models") / "tiny-eps", seed=0)
    config_path = folder / "scheduler" / "scheduler_config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps(dict(config, prediction_type="epsilon")))
    return folder


@pytest.fixture(scope="session")
def torch_engine(tiny_model):
    from jstyleid.engines import load_engine

    return load_engine("torch", str(tiny_model), device="cpu", dtype="float32")


def write_image(path, seed: int, size=(80, 64), mode="RGB"):
    """A random but smooth-ish test picture (blocks of colour), saved to `path`."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.NEAREST)
    image.convert(mode).save(path)
    return path


@pytest.fixture
def images(tmp_path):
    """Four test images: content c0, c1 and style s0, s1."""
    names = ["c0", "c1", "s0", "s1"]
    return {n: write_image(tmp_path / f"{n}.png", seed=i) for i, n in enumerate(names)}
