"""Issue 17: the challenge's B-set shape run end to end (28 styles x 25 prompts x 3 references, a
4-setting sweep, evaluation with every part, selection by Hist) on the tiny model at the smallest
settings. Marker `challenge`: `make test-challenge` runs it, and CI after `make test` (what it costs:
docs/performance.md, "The challenge shape")."""

from __future__ import annotations

import json
import time

import pytest

from jstyleid.evaluation.random_networks import write_random_networks
from test_challenge_size import IMAGES, PROMPTS, challenge_layout
from test_workflow import copy_workflow, edit_config, snakemake

STYLES = 28
RUN_TIMEOUT = 3600
# the first test builds the run (the module's fixture): its timeout holds the run's
pytestmark = pytest.mark.timeout(RUN_TIMEOUT + 600)
SMALLEST = dict(lora_steps=2, gen_steps=2, inversion_steps=2)
SETTINGS = ["content", "styleid"] + [f"g{g}_t{t}" for g in (0.3, 0.9) for t in (1.2, 1.8)]
PARTS = ("hist", "dino", "lpips", "fid", "clip_iqa", "clip_r", "final")


@pytest.fixture(scope="module")
def challenge_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("challenge")
    weights = write_random_networks(root / "weights")
    workdir = challenge_layout(copy_workflow(root / "wf"), STYLES)
    edit_config(workdir, **SMALLEST, evaluation=dict(
        enabled=True, parts=list(PARTS[:-1]), dino=weights["dino"], clip=weights["clip"], clip_iqa=weights["clip_iqa"],
        clip_iqa_scaling="correct", torch_hub=weights["torch_hub"], clip_r_words=""))
    start = time.monotonic()
    snakemake(workdir, "--cores", "2", "--set-threads", "evaluate=2", timeout=RUN_TIMEOUT)  # evaluate runs last, alone
    print(f"challenge shape {STYLES}x{PROMPTS}x{IMAGES}, 4-setting sweep: {time.monotonic() - start:.0f} s")
    return workdir


@pytest.mark.challenge
def test_every_prompt_of_every_style_is_submitted(challenge_run):
    submission = challenge_run / "results/submission"
    mapping = json.loads((submission / "mapping.json").read_text())
    for s in range(1, STYLES + 1):
        style = f"{s:02d}"
        prompts = json.loads((challenge_run / "challenge" / style / "prompt.json").read_text()).values()
        assert sorted(p.name for p in (submission / style).glob("*.png")) == sorted(f"{p}.png" for p in prompts)
        assert mapping["selection"][style]["setting"] in SETTINGS[1:]  # chosen by Hist among the stylised sets
    assert len(list(submission.glob("*/*.png"))) == STYLES * PROMPTS


@pytest.mark.challenge
def test_every_style_and_setting_has_every_part_scored(challenge_run):
    scores = json.loads((challenge_run / "results/eval/scores.json").read_text())
    assert all(scores["metrics"][part]["status"] == "ok" for part in PARTS[:-1])
    assert sorted(scores["styles"]) == [f"{s:02d}" for s in range(1, STYLES + 1)]
    for style, rows in scores["styles"].items():
        assert sorted(rows) == sorted(SETTINGS), style
        for label, row in rows.items():
            assert all(isinstance(row[part], float) for part in PARTS), (style, label, row)


@pytest.mark.challenge
def test_the_report_opens_in_chromium_at_this_size(challenge_run):
    from chromium import probe_page

    report = challenge_run / "results/report"
    assert (report / "index.html").stat().st_size < 1024 * 1024
    for page in (report / "index.html", report / f"style-{STYLES:02d}.html"):
        seen = probe_page(page, timeout=300)
        assert seen["images"] and all(image["width"] > 0 for image in seen["images"]), page
