"""profiles/slurm-gpu: profiles/slurm with a GPU per model job, run through a real SLURM whose node
has a stand-in GPU (scripts/slurm-up.sh)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml
from test_slurm import MODEL_JOBS, run_through_slurm
from test_workflow import ROOT, copy_workflow, edit_config, pending



def model_rules() -> set[str]:
    """The rules whose resources are MODEL_JOB, and the rules made from them with `use rule`."""
    text = "\n".join(path.read_text() for path in sorted((ROOT / "rules").glob("*.smk")))
    blocks = re.split(r"^(?=rule |use rule )", text, flags=re.M)
    rules = {re.match(r"rule (\w+):", b).group(1) for b in blocks if b.startswith("rule ") and "**MODEL_JOB" in b}
    derived = [re.match(r"use rule (\w+) as (\w+)", b).groups() for b in blocks if b.startswith("use rule ")]
    return rules | {new for old, new in derived if old in rules}


def has_standin_gpu() -> bool:
    """Whether a node of this SLURM (sbatch found) has the stand-in GPU of scripts/slurm-up.sh."""
    nodes = subprocess.run(["scontrol", "show", "node"], capture_output=True, text=True).stdout
    return "gres/gpu:standin" in nodes


def test_the_gpu_profile_is_the_slurm_profile_with_one_gpu_per_model_job():
    """Both profiles name every model rule (one left out would ask for the GPU of MODEL_JOB on a CPU
    cluster, or for none under slurm-gpu) and differ in nothing else."""
    slurm, gpu = (yaml.safe_load((ROOT / "profiles" / name / "config.yaml").read_text())
                  for name in ("slurm", "slurm-gpu"))
    assert slurm.pop("set-resources") == {rule: {"gpu": 0} for rule in gpu["set-resources"]}
    assert gpu.pop("set-resources") == {rule: {"gpu": 1} for rule in model_rules()}
    assert slurm == gpu  # nothing else differs


def slurm_gpu_or_skip() -> None:
    """Skip without a SLURM whose node has the stand-in GPU; fail instead where JSTYLEID_REQUIRE_SLURM_GPU is
    set (.ci/run), so a CI whose SLURM or GRES set-up broke does not pass by skipping."""
    if shutil.which("sbatch") is None:
        reason = "no SLURM here (sbatch not found); bring one up with scripts/slurm-up.sh"
    elif not has_standin_gpu():
        reason = "this SLURM has no stand-in GPU (gres gpu:standin); scripts/slurm-up.sh sets one up"
    else:
        return
    if os.environ.get("JSTYLEID_REQUIRE_SLURM_GPU"):
        pytest.fail(reason + ", but JSTYLEID_REQUIRE_SLURM_GPU is set")
    pytest.skip(reason)


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.timeout(3300)  # two runs through SLURM, up to 1500 s each
def test_model_jobs_ask_for_a_gpu_and_light_jobs_do_not(tmp_path):
    slurm_gpu_or_skip()
    workdir = copy_workflow(tmp_path / "wf")
    jobs = run_through_slurm(workdir, profile="slurm-gpu")
    assert jobs.keys() == MODEL_JOBS | {"rule_make_model_wildcards_tiny"}  # submission, report: local rules
    for job in MODEL_JOBS:  # any GPU (--gpus=1): asked for untyped, given the node's one
        requested, allocated = jobs[job]
        assert "gres/gpu=1" in requested.split(",") and "gres/gpu:standin" not in requested, (job, requested)
        assert "gres/gpu=1" in allocated.split(","), (job, allocated)
    assert "gres/gpu" not in "".join(jobs["rule_make_model_wildcards_tiny"])
    assert (workdir / "results/report/index.html").is_file()

    edit_config(workdir, gpu_model="standin")  # a GPU model (--gpus=standin:1) changes no picture: nothing reruns
    assert pending(workdir) == set()  # (the report shows only the keys that make pictures)...
    edit_config(workdir, gamma=0.5)  # ...and the injections a gamma change reruns ask for it
    jobs = run_through_slurm(workdir, profile="slurm-gpu")
    assert jobs.keys() == {"rule_inject_wildcards_01", "rule_inject_wildcards_02"}
    for requested, allocated in jobs.values():
        assert "gres/gpu:standin=1" in requested.split(","), requested
        assert "gres/gpu:standin=1" in allocated.split(","), allocated
