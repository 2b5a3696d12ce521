"""The workflow with its per-image store (config `store`): a change recomputes only the images it touches."""

from __future__ import annotations

import json
import re

import h5py
import pytest
from test_workflow import AFTER_INJECT, chain, edit_config, pending, snakemake

from jstyleid.cli import main

COUNT = re.compile(r"(\d+) of (\d+) image\(s\) from the store, (\d+) to compute")


def counts(workdir, stage, style="01"):
    """(images from the store, images computed) in the last log of the style's `stage` job."""
    found = COUNT.findall((workdir / f"results/logs/{stage}/{style}.log").read_text())
    return sum(int(reused) for reused, _, _ in found), sum(int(todo) for _, _, todo in found)


@pytest.mark.slow
def test_a_new_prompt_computes_only_its_chain_and_new_steps_nothing_stale(workflow, capsys):
    workdir = workflow  # a copy of the demo run (tests/conftest.py), its store's hard links kept
    results = workdir / "results/01"
    before = {p: p.read_bytes() for p in results.rglob("*") if p.suffix in (".png", ".h5")}

    prompts = workdir / "data/01/prompt.json"
    prompts.write_text(json.dumps({**json.loads(prompts.read_text()), "9": "A new prompt"}))
    assert pending(workdir) == chain("01", "generate", "invert_content", "inject") | AFTER_INJECT
    snakemake(workdir, "--cores", "2")
    for stage in ("generate", "invert_content", "inject"):
        assert counts(workdir, stage) == (2, 1)  # Bird and Sailing ship from the store, the new prompt computed
    assert all(path.read_bytes() == data for path, data in before.items())
    assert (results / "styleid/A new prompt.png").is_file()
    report = (workdir / "results/report/index.html").read_text()
    assert "<tr><td>01</td><td>generate</td><td class=num>2</td><td class=num>1</td></tr>" in report

    # Other inversion steps: the store holds only 3-step caches, so nothing of them is reused.
    edit_config(workdir, styles={"01": {"inversion_steps": 4}})
    assert pending(workdir) == chain("01", "invert_style", "invert_content", "inject") | AFTER_INJECT
    snakemake(workdir, "--cores", "2")
    assert counts(workdir, "invert_style") == (0, 3) and counts(workdir, "invert_content") == (0, 3)
    assert counts(workdir, "inject") == (0, 3)
    with h5py.File(results / "cache/content/Bird.h5") as cache:
        assert list(cache.attrs["timesteps"]) == [1, 251, 501, 751]

    # gc: the 3-step caches of style 01 (3 style, 3 content) and their 3 injections are what no output
    # links to any more; everything else stays, and the workflow has nothing to redo.
    store = workdir / "results/store"
    capsys.readouterr()
    assert main(["gc", "--store", str(store), "--unreferenced"]) == 0
    assert len(capsys.readouterr().out.split()) == 9
    kept = [p for p in store.glob("*/*/*") if p.suffix != ".json"]
    assert kept and all(p.stat().st_nlink == 2 for p in kept)
    assert pending(workdir) == set()
