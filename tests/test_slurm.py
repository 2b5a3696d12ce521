"""The workflow through a real SLURM (scripts/slurm-up.sh brings one up on this machine)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time

import pytest
from test_workflow import STYLES, copy_workflow, edit_config, snakemake

pytestmark = [
    pytest.mark.slurm,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("sbatch") is None,
                       reason="no SLURM here (sbatch not found); bring one up with scripts/slurm-up.sh"),
]


def run_through_slurm(workdir) -> set[str]:
    """Runs the workflow with profiles/slurm; returns the rule/wildcards of the jobs SLURM ran."""
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
    result = snakemake(workdir, "--workflow-profile", str(workdir / "profiles/slurm"),
                       "--slurm-init-seconds-before-status-checks", "5", timeout=1500)
    run_id = re.search(r"SLURM run ID: (\S+)", result.stdout + result.stderr).group(1)
    sacct = subprocess.run(["sacct", "-X", "-n", "-P", "-S", started, "--name", run_id, "-o", "Comment,State"],
                           capture_output=True, text=True, check=True).stdout
    jobs = [line.split("|") for line in sacct.splitlines()]
    assert jobs and all(state == "COMPLETED" for _, state in jobs), sacct
    return {comment for comment, _ in jobs}


def test_demo_through_slurm_and_a_gamma_change(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    model_jobs = {f"rule_{rule}_wildcards_{style}" for style in STYLES
                  for rule in ["train_lora", "generate", "invert_style", "invert_content", "inject"]}
    assert run_through_slurm(workdir) == model_jobs | {"rule_make_model_wildcards_tiny"}
    assert (workdir / "results/report/index.html").is_file()  # submission and report are local rules

    edit_config(workdir, gamma=0.5)
    assert run_through_slurm(workdir) == {"rule_inject_wildcards_01", "rule_inject_wildcards_02"}
