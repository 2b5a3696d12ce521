"""Per-job fixed cost: a job process of a stage that loads no LoRA weights imports no peft, gives the
same bits as a caller's process does (peft visible there), and LoRA jobs still load their weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_image
from jstyleid.cli import main

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "bench" / "startup.py"  # runs a command line in a fresh process up to load_engine's return


@pytest.fixture(scope="module")
def job_inputs(tiny_model, tmp_path_factory):
    """A picture, its content and style caches (3 steps, 64 px) and a 1-step LoRA of a style folder."""
    work = tmp_path_factory.mktemp("startup")
    image = write_image(work / "img.png", seed=0, size=(64, 64))
    engine = ["--model", str(tiny_model), "--device", "cpu", "--dtype", "float32"]
    caches = {}
    for role in ("content", "style"):
        caches[role] = work / f"{role}.h5"
        assert main(["invert", *engine, "--images", str(image), "--role", role, "--out", str(caches[role]),
                     "--resolution", "64", "--ddim-steps", "3"]) == 0
    (work / "07" / "images").mkdir(parents=True)
    write_image(work / "07" / "images" / "a.png", seed=1, size=(64, 64))
    assert main(["train-lora", *engine, "--style-dir", str(work / "07"), "--out-dir", str(work / "lora"),
                 "--train-steps", "1", "--resolution", "64"]) == 0
    return dict(work=work, image=image, engine=engine, lora=work / "lora", **caches)


def probe(argv: list[str]) -> list[str]:
    """The heavy modules a fresh job process of `argv` has imported once its engine is loaded."""
    done = subprocess.run([sys.executable, str(PROBE), "--probe", *argv], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["heavy"]


def inject_argv(inputs, out):
    return ["inject", *inputs["engine"], "--content-caches", str(inputs["content"]), "--style-caches",
            str(inputs["style"]), "--out", str(out)]


def test_invert_and_inject_job_processes_import_no_peft(job_inputs):
    invert = ["invert", *job_inputs["engine"], "--images", str(job_inputs["image"]), "--role", "content",
              "--out", str(job_inputs["work"] / "probe.h5")]
    for argv in (invert, inject_argv(job_inputs, job_inputs["work"] / "probe.png")):
        heavy = probe(argv)
        assert "peft" not in heavy and "transformers.models.clip.modeling_clip" in heavy, (argv[0], heavy)


def test_a_lora_job_process_imports_peft_and_loads_the_weights(job_inputs):
    heavy = probe(["generate", *job_inputs["engine"], "--lora", str(job_inputs["lora"]), "--prompt", "a cat",
                   "--out", str(job_inputs["work"] / "cat.png"), "--resolution", "64"])
    assert "peft" in heavy


def test_an_inject_job_process_writes_the_bits_of_an_in_process_call(job_inputs):
    work = job_inputs["work"]
    job = subprocess.run([sys.executable, "-m", "jstyleid.cli", *inject_argv(job_inputs, work / "job.png")],
                         capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=300)
    assert job.returncode == 0, job.stderr[-2000:]
    assert main(inject_argv(job_inputs, work / "in-process.png")) == 0  # this process: peft importable
    from diffusers.utils import USE_PEFT_BACKEND

    assert USE_PEFT_BACKEND  # an in-process call hides nothing from its caller

    assert (work / "job.png").read_bytes() == (work / "in-process.png").read_bytes()
