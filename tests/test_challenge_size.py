"""Issue 17: the workflow at the challenge's own size (B set: 28 styles x 25 prompts x 3 images) with a
4-setting sweep, evaluation and selection. No command line may grow with the data: Linux refuses one
argument over 128 KiB, and the lists now travel in the manifest files (rules/manifests.smk)."""

from __future__ import annotations

import json
import re

import pytest

from conftest import write_image
from test_workflow import copy_workflow, edit_config, snakemake

PROMPTS, IMAGES = 25, 3
LIMIT = 8 * 1024  # bytes of one shell command; far below Linux's 128 KiB per argument
CHALLENGE = dict(evaluation={"enabled": True}, select="hist", sweep={"gamma": [0.3, 0.9], "temperature": [1.2, 1.8]})


def challenge_layout(workdir, styles: int):
    """`styles` style folders XX/ of tiny images and 25 prompts each, as the challenge's B set."""
    for s in range(1, styles + 1):
        folder = workdir / "challenge" / f"{s:02d}"
        (folder / "images").mkdir(parents=True)
        for i in range(IMAGES):
            write_image(folder / "images" / f"ref_{i}.png", seed=s * 10 + i, size=(16, 16))
        prompts = {str(p): f"A long challenge prompt number {p} of style {s}, a quiet scene" for p in range(PROMPTS)}
        (folder / "prompt.json").write_text(json.dumps(prompts))
    edit_config(workdir, styles_dir="challenge", **CHALLENGE)
    return workdir


def shell_commands(workdir):
    lines = snakemake(workdir, "-n", "-p", timeout=600).stdout.splitlines()
    return [line.removeprefix("Shell command: ") for line in lines if line.startswith("Shell command: jstyleid")]


def longest_per_stage(commands):
    longest = {}
    for command in commands:
        stage = command.split()[1]
        longest[stage] = max(longest.get(stage, 0), len(command))
    return longest


@pytest.fixture(scope="module")
def challenge(tmp_path_factory):
    return challenge_layout(copy_workflow(tmp_path_factory.mktemp("b-set") / "wf"), 28)


def test_no_command_grows_with_styles_prompts_or_settings(challenge, tmp_path):
    small = challenge_layout(copy_workflow(tmp_path / "wf"), 3)
    big, few = shell_commands(challenge), shell_commands(small)
    assert len(big) == 1 + 28 * 5 + 3  # make-model; per style train, generate, 2 inversions, one inject for all settings
    assert max(map(len, big)) < LIMIT
    assert longest_per_stage(big) == longest_per_stage(few)  # the longest command of each stage: the same at 3 and 28 styles


def test_the_manifests_hold_every_style_prompt_and_setting(challenge):
    snakemake(challenge, "--cores", "1", "--until", "manifest", timeout=900)
    manifests = challenge / "results/manifests"
    evaluation = json.loads((manifests / "evaluate/all.json").read_text())["styles"]
    assert len(evaluation) == 28
    assert all(len(style["refs"]) == IMAGES and len(style["settings"]) == 6 for style in evaluation)  # content, styleid, 4
    assert all(len(s["images"]) == PROMPTS for style in evaluation for s in style["settings"])
    submission = json.loads((manifests / "submission/all.json").read_text())
    assert len(submission["--prompts"]) == len(submission["--image-dirs"]) == len(submission["--select"]) == 28
    assert len(json.loads((manifests / "inject/28.json").read_text())["--content-caches"]) == PROMPTS
    settings = json.loads((manifests / "inject_settings/28.json").read_text())  # its own, then the 4 of the sweep
    assert len(settings) == 5 and all(len(s["out"]) == PROMPTS for s in settings)
    assert settings[0]["out"][0].startswith("results/28/styleid/") and settings[-1]["out"][0].startswith(
        "results/28/sweep/g0.9_t1.8/")
    report = json.loads((manifests / "report/all.json").read_text())
    assert len(report["styles"]) == 28 and all(len(style["sweep"]) == 4 for style in report["styles"])


def test_the_report_at_challenge_size_is_an_index_and_a_page_per_style(tmp_path):
    from jstyleid.cli import main

    settings = ["styleid"] + [f"g{g}_t{t}" for g in (0.3, 0.9) for t in (1.2, 1.8)]
    styles = []
    for s in range(1, 29):
        name, root = f"{s:02d}", tmp_path / f"{s:02d}"
        prompts = {str(p): f"A long challenge prompt number {p} of style {s}" for p in range(PROMPTS)}
        (root / "content").mkdir(parents=True)
        (root / "prompt.json").write_text(json.dumps(prompts))
        refs = [str(write_image(root / f"ref_{i}.png", seed=i, size=(16, 16))) for i in range(IMAGES)]
        contents = [str(write_image(root / "content" / f"{prompt}.png", seed=1, size=(16, 16)))
                    for prompt in prompts.values()]
        for label in settings:
            (root / label).mkdir()
            for prompt in prompts.values():
                write_image(root / label / f"{prompt}.png", seed=2, size=(16, 16))
        styles.append(dict(name=name, prompts=str(root / "prompt.json"), refs=refs, contents=contents,
                           outputs=str(root / "styleid"), loss=None,
                           sweep=[dict(gamma=0.3, temperature=1.2, outputs=str(root / label)) for label in settings[1:]]))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(dict(styles=styles, benchmarks=[], config={"model": "builtin:tiny"})))
    index = tmp_path / "report/index.html"
    assert main(["report", "--manifest", str(manifest), "--out", str(index)]) == 0
    pages = sorted(index.parent.glob("style-*.html"))
    assert [p.name for p in pages] == [f"style-{s:02d}.html" for s in range(1, 29)]
    assert index.stat().st_size < 1024 * 1024
    for page in [index, *pages]:
        images = re.findall(r"<img [^>]*>", page.read_text())
        assert images and all('loading="lazy"' in img for img in images)
    # references; per prompt content and output; the sweep grid: per prompt content and 4 settings
    assert len(re.findall(r"<img ", pages[-1].read_text())) == IMAGES + PROMPTS * 2 + PROMPTS * (1 + 4)
