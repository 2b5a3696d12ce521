"""Shared fixtures: the tiny preset model and each distinct workflow run (built once per session), and
small test images."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# `python -m pytest` without make: the Makefile's Jittor compile cache, so kernels compile once per checkout.
os.environ.setdefault("JITTOR_HOME", str(Path(__file__).resolve().parents[1] / ".cache" / "jittor-home"))
SWEEP_GAMMAS = [0.25, 0.5]
RUN_TIMEOUT = 2400  # seconds for one session workflow run on a loaded 2-core machine
TEST_TIMEOUT = 900  # pyproject's default per test
JITTOR_COLD_TIMEOUT = 2700  # Jittor's first import compiles its core and operators (README, "Compile cache")


def pytest_collection_modifyitems(items):
    """The first test that asks for a session run pays for building it: its timeout grows by the run's."""
    for item in items:
        if item.get_closest_marker("timeout"):
            continue
        runs = 2 if "swept" in item.fixturenames else 1 if "built" in item.fixturenames else 0
        if runs:
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT + runs * RUN_TIMEOUT))
        elif item.get_closest_marker("jittor"):
            item.add_marker(pytest.mark.timeout(JITTOR_COLD_TIMEOUT))


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


def copy_run(source: Path, dest: Path) -> Path:
    """A copy of a workflow run that Snakemake finds up to date: `cp -a` keeps mtimes, Snakemake's
    metadata and the store's hard links (tests/test_workflow_store.py counts them)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(source), str(dest)], check=True)
    return dest


# The workflow helpers live in test_workflow.py (the workflow tests import them from there too).
@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The demo workflow (two styles, tiny model, small step counts) run once to completion; read only."""
    from test_workflow import copy_workflow, snakemake

    workdir = copy_workflow(tmp_path_factory.mktemp("built") / "wf")
    snakemake(workdir, "--cores", "2", timeout=RUN_TIMEOUT)
    return workdir


@pytest.fixture
def workflow(built, tmp_path):
    """A copy of the completed run to change."""
    return copy_run(built, tmp_path / "wf")


@pytest.fixture(scope="session")
def swept(built, tmp_path_factory):
    """The demo workflow with a gamma sweep (SWEEP_GAMMAS) run to completion: `built` plus the sweep's
    injections, so nothing before them is computed twice; read only."""
    from test_workflow import edit_config, snakemake

    workdir = copy_run(built, tmp_path_factory.mktemp("swept") / "wf")
    edit_config(workdir, sweep={"gamma": SWEEP_GAMMAS, "temperature": []})
    snakemake(workdir, "--cores", "2", timeout=RUN_TIMEOUT)
    return workdir
