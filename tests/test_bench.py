"""bench/bench.py: the CPU smoke pass runs every stage and writes every figure (no timing is asserted)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench.py"


def _bench(*argv, **kw):
    # One thread: the smoke pass is short, and spinning OpenMP threads on a busy 2-core box are not.
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(BENCH), *map(str, argv)], capture_output=True, text=True, env=env,
                          check=True, **kw)


@pytest.fixture(scope="module")
def smoke(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    done = _bench("--model", tiny_model, "--resolution", 64, "--ddim-steps", 3, "--smoke", "--out", out,
                  "--work", out.parent / "work", timeout=300)
    return json.loads(out.read_text()), done.stdout, out


def _positive(value):
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_every_stage_has_a_positive_figure(smoke):
    results, _, _ = smoke
    assert results["device"].startswith("cpu") and results["date"]
    assert {"torch", "diffusers", "cuda"} <= set(results["versions"])
    startup = results["startup"]
    for name in ("import_torch", "import_diffusers", "load_host", "to_device", "first_unet_call", "job_overhead",
                 "gpu_held_overhead"):
        assert _positive(startup[name]["value"]), name
    figures = results["resolutions"]["64"]["figures"]
    expected = ["lora_step", "generate", "invert_content", "invert_style", "invert_content_latents_only",
                "seed_cold_r1", "unet_call", "vae_encode_decode", "compute_floor"]
    expected += [f"{kind}_{mode}_r{r}" for kind in ("inject_warm", "cold") for mode in ("stored", "recompute")
                 for r in (1, 2)]
    expected += [f"cache_{kind}{suffix}" for kind in ("content", "style") for suffix in ("", "_latents_only")]
    assert set(expected) <= set(figures)
    for name in expected:
        assert _positive(figures[name]["value"]), name
    assert figures["cache_content"]["value"] > figures["cache_content_latents_only"]["value"]


@pytest.mark.slow
def test_the_seed_baseline_is_measured_beside(smoke):
    results, stdout, _ = smoke
    figures = results["resolutions"]["64"]["figures"]
    for name in ("lora_step", "generate", "invert_content", "inject_warm_stored_r1", "cold_stored_r1",
                 "cold_recompute_r1"):
        assert _positive(figures[name]["baseline"]) and _positive(figures[name]["speedup"]), name
    assert figures["cold_stored_r2"]["baseline"] is None  # the seed used one style reference
    assert "| seed_cold_r1 |" in stdout and "| figure | jstyleid |" in stdout


@pytest.mark.slow
def test_end_to_end_estimate_shows_its_extrapolation(smoke):
    results, stdout, _ = smoke
    e2e = results["resolutions"]["64"]["e2e"]
    assert all(_positive(v) for v in e2e["measured_s"].values())
    assert _positive(e2e["estimate_min"])
    by_k = e2e["estimate_min_by_jobs_in_flight"]
    assert by_k["1"] >= by_k["2"] >= by_k["3"] == e2e["estimate_min"]
    assert e2e["formula"].startswith("T = 28 styles") and e2e["formula"] in stdout


def _extrapolate(h, e, w):
    sys.path.insert(0, str(BENCH.parent))
    from bench import extrapolate

    # one style measured at challenge size, so each job's work is the stage time itself
    stages = dict(train_lora=w, generate=w, invert_style=w, invert_content=w, inject=w)
    return extrapolate(stages, 1, 25, 3, 500, 0.0, dict(total=h + e, gpu_held=e))["estimate_min_by_jobs_in_flight"]


def test_jobs_in_flight_hide_the_start_up_before_the_gpu_claim():
    jobs = 28 * 5 / 60  # minutes per second of a job's time
    gpu_bound = _extrapolate(h=5, e=1, w=9)  # the next job's start-up fits in the current job's work
    assert gpu_bound == {k: pytest.approx(jobs * seconds) for k, seconds in ((1, 15), (2, 10), (3, 10))}
    start_up_bound = _extrapolate(h=20, e=1, w=2)  # K start-ups overlap: 1/K of each is paid
    assert start_up_bound == {k: pytest.approx(jobs * seconds) for k, seconds in ((1, 23), (2, 11.5), (3, 23 / 3))}


@pytest.mark.slow
def test_compare_prints_runs_side_by_side(smoke):
    _, _, out = smoke
    table = _bench("--compare", out, out).stdout
    assert "| 64 | cold_stored_r1 | s/image |" in table and "| | dtype | | float32 | float32 |" in table


@pytest.mark.slow
def test_workflow_bench_runs_the_workflow_once_per_jobs_in_flight(tmp_path):
    out = tmp_path / "workflow.json"
    done = subprocess.run([sys.executable, str(BENCH.parent / "workflow.py"), "--preset", "tiny", "--styles", "1",
                           "--prompts", "2", "--refs", "1", "--smoke", "--in-flight", "1", "2", "--cores", "2",
                           "--work", str(tmp_path / "work"), "--out", str(out)],
                          capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(out.read_text())["runs"]
    assert set(runs) == {"1", "2"}
    for run in runs.values():
        assert run["model_jobs"] == 5  # train_lora, generate, invert_style, invert_content, inject
        assert run["challenge_min"] == pytest.approx(run["wall_s"] * 28 / 60)
        assert run["wall_s"] >= max(sum(times) for times in run["job_s"].values())
    # Jobs in flight change the order of work, not the pictures.
    one, two = (tmp_path / "work" / f"workflow-gpu{k}" / "results" / "submission" / "01" for k in (1, 2))
    assert sorted(p.name for p in one.iterdir()) == ["Thing 0.png", "Thing 1.png"]
    for png in one.iterdir():
        assert png.read_bytes() == (two / png.name).read_bytes()
    assert "| 2 |" in done.stdout
