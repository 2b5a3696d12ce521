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


def run_through_slurm(workdir, profile="slurm") -> dict[str, tuple[str, str]]:
    """Runs the workflow with profiles/<profile>; returns {rule/wildcards: (requested, allocated TRES)}
    of the jobs SLURM ran, as sacct lists them."""
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 60))
    result = snakemake(workdir, "--workflow-profile", str(workdir / "profiles" / profile),
                       "--slurm-init-seconds-before-status-checks", "5", timeout=1500)
    run_id = re.search(r"SLURM run ID: (\S+)", result.stdout + result.stderr).group(1)
    sacct = subprocess.run(["sacct", "-X", "-n", "-P", "-S", started, "--name", run_id,
                            "-o", "Comment,State,ReqTRES,AllocTRES"], capture_output=True, text=True, check=True).stdout
    jobs = [line.split("|") for line in sacct.splitlines()]
    assert jobs and all(state == "COMPLETED" for _, state, _, _ in jobs), sacct
    return {comment: (requested, allocated) for comment, _, requested, allocated in jobs}


MODEL_JOBS = {f"rule_{rule}_wildcards_{style}" for style in STYLES
              for rule in ["train_lora", "generate", "invert_style", "invert_content", "inject"]}


@pytest.mark.timeout(3300)  # two runs through SLURM, up to 1500 s each
def test_demo_through_slurm_and_a_gamma_change(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    jobs = run_through_slurm(workdir)
    assert jobs.keys() == MODEL_JOBS | {"rule_make_model_wildcards_tiny"}
    assert not [job for job, tres in jobs.items() if "gres/gpu" in "".join(tres)]  # no GPU asked for or given
    assert (workdir / "results/report/index.html").is_file()  # submission and report are local rules

    edit_config(workdir, gamma=0.5)
    assert run_through_slurm(workdir).keys() == {"rule_inject_wildcards_01", "rule_inject_wildcards_02"}
