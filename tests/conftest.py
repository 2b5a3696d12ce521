"""Shared fixtures: the tiny preset model and each distinct workflow run (built once per session), and
small test images."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from PIL import Image

# `python -m pytest` without make: the Makefile's Jittor compile cache, so kernels compile once per checkout.
os.environ.setdefault("JITTOR_HOME", str(Path(__file__).resolve().parents[1] / ".cache" / "jittor-home"))
# Under pytest-xdist (make test: -n 2) each worker gets its share of the cores for torch's threads, and so do
# the processes it starts, so that two workers do not run twice as many threads as there are cores.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS",
                          str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))
SWEEP_GAMMAS = [0.25, 0.5]
RUN_TIMEOUT = 2400  # seconds for one session workflow run on a loaded 2-core machine
TEST_TIMEOUT = 900  # pyproject's default per test
JITTOR_COLD_TIMEOUT = 2700  # Jittor's first import compiles its core and operators (README, "Compile cache")


# Tests that share something fixed run on one xdist worker, one after another (--dist loadgroup): Jittor's
# compile cache (two first imports would both compile) and the one SLURM node (two runs would queue on it).
SHARED_BY_MARKER = ("jittor", "slurm")


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group markers
def pytest_collection_modifyitems(items):
    """The first test that asks for a session run pays for building it: its timeout grows by the run's.
    Tests of a SHARED_BY_MARKER marker get its xdist group."""
    for item in items:
        for marker in SHARED_BY_MARKER:
            if item.get_closest_marker(marker):
                item.add_marker(pytest.mark.xdist_group(marker))
                break
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


def write_images(folder: Path) -> dict[str, Path]:
    """Four test images in `folder`: content c0, c1 and style s0, s1."""
    return {n: write_image(folder / f"{n}.png", seed=i) for i, n in enumerate(["c0", "c1", "s0", "s1"])}


@pytest.fixture
def images(tmp_path):
    """write_images in the test's own folder."""
    return write_images(tmp_path)


def copy_run(source: Path, dest: Path) -> Path:
    """A copy of a workflow run that Snakemake finds up to date: `cp -a` keeps mtimes, Snakemake's
    metadata and the store's hard links (tests/test_workflow_store.py counts them)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(source), str(dest)], check=True)
    return dest


def run_once(tmp_path_factory, name: str, make) -> Path:
    """`make(workdir)` once per test run, even with xdist's workers (each has its own session): the first
    worker to ask makes it in the temporary folder that all workers share, under a file lock, and the
    others wait for it and reuse it (or fail at once with its failure, instead of making it again).
    Returns the workdir."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # pytest-N/, above the workers' popen-gwK/
    folder, done, failed = shared / name, shared / f"{name}.done", shared / f"{name}.failed"
    with FileLock(shared / f"{name}.lock"):
        if failed.is_file():
            pytest.fail(f"the session run {name!r} failed in another worker:\n{failed.read_text()}")
        if not done.is_file():
            try:
                make(folder / "wf")
            except (Exception, pytest.fail.Exception) as error:
                failed.write_text(str(error))
                raise
            done.touch()
    return folder / "wf"


# The workflow helpers live in test_workflow.py (the workflow tests import them from there too).
@pytest.fixture(scope="session")
def built(tmp_path_factory):
    """The demo workflow (two styles, tiny model, small step counts) run once to completion; read only."""
    from test_workflow import copy_workflow, snakemake

    def make(workdir):
        snakemake(copy_workflow(workdir), "--cores", "2", timeout=RUN_TIMEOUT)

    return run_once(tmp_path_factory, "built", make)


@pytest.fixture
def workflow(built, tmp_path):
    """A copy of the completed run to change."""
    return copy_run(built, tmp_path / "wf")


@pytest.fixture(scope="session")
def swept(built, tmp_path_factory):
    """The demo workflow with a gamma sweep (SWEEP_GAMMAS) run to completion: `built` plus the sweep's
    injections, so nothing before them is computed twice; read only."""
    from test_workflow import edit_config, snakemake

    def make(workdir):
        copy_run(built, workdir)
        edit_config(workdir, sweep={"gamma": SWEEP_GAMMAS, "temperature": []})
        snakemake(workdir, "--cores", "2", timeout=RUN_TIMEOUT)

    return run_once(tmp_path_factory, "swept", make)


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory):
    """The metric networks on random weights of the scorer's classes, saved where the libraries read them."""
    from jstyleid.evaluation.random_networks import write_random_networks

    return write_random_networks(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def torch_home(random_weights, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(random_weights["torch_home"]))
    return random_weights
