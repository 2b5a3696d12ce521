"""The Snakemake workflow on the tiny model: one real run, then what each change makes rerun.

Every test works on its own copy of the workflow (Snakefile, rules, schemas, config, profiles and
two of the demo styles) and reads the plan from `snakemake -n --summary`. The real run is the session
fixture `built` of tests/conftest.py (shared with the other workflow test files); `workflow` copies it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ["Snakefile", "rules", "schemas", "config.yaml", "profiles", "report"]
STYLES = ["01", "02"]
# Small step counts: these tests are about what reruns, not about the pictures. Without the demo's
# evaluation (tests/test_eval_workflow.py has it).
FAST = dict(lora_steps=2, gen_steps=2, inversion_steps=3)


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(ROOT / name, dest / name)
    for style in STYLES:
        shutil.copytree(ROOT / "data" / style, dest / "data" / style)
    demo = yaml.safe_load((ROOT / "config.yaml").read_text())
    edit_config(dest, **FAST, evaluation=dict(demo["evaluation"], enabled=False))  # the tests that score turn it on
    return dest


def edit_config(workdir: Path, **changes):
    path = workdir / "config.yaml"
    config = yaml.safe_load(path.read_text())
    config.update(changes)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def snakemake(workdir: Path, *args, check=True, timeout=900):
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = ["timeout", "-k", "10", str(timeout), sys.executable, "-m", "snakemake",
           "--snakefile", str(workdir / "Snakefile"), "--directory", str(workdir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if check and result.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def pending(workdir: Path) -> set[tuple[str, str]]:
    """(rule, style or '*') of every job the next run would execute, from `snakemake -n --summary`."""
    lines = snakemake(workdir, "-n", "--summary").stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    jobs = set()
    for line in lines[header + 1:]:
        output, _, rule, _, _, plan = line.split("\t")
        if plan != "no update" and rule != "manifest":  # a job's lists in a file: not work of its own
            parts = Path(output).parts
            jobs.add((rule, parts[1] if parts[1] in STYLES else "*"))
    return jobs


def chain(style, *rules):
    return {(rule, style) for rule in rules}


AFTER_INJECT = frozenset({("submission", "*"), ("report", "*")})


@pytest.mark.slow
def test_demo_outputs(built):
    mapping = json.loads((built / "results/submission/mapping.json").read_text())
    for style in STYLES:
        prompts = json.loads((built / "data" / style / "prompt.json").read_text()).values()
        assert [entry["prompt"] for entry in mapping[style]] == list(prompts)
        for prompt in prompts:
            assert (built / "results/submission" / style / f"{prompt}.png").is_file()
        assert (built / f"results/{style}/lora/loss.png").is_file()
        assert (built / f"results/logs/inject/{style}.log").is_file()
    html = (built / "results/report/index.html").read_text()
    assert "Sailing%20ship.png" in html and "Time per stage" in html
    assert "http://" not in html and "https://" not in html
    assert pending(built) == set()


@pytest.mark.slow
def test_gamma_or_temperature_rerun_only_injection(workflow):
    edit_config(workflow, gamma=0.5, temperature=2.0)
    assert pending(workflow) == chain("01", "inject") | chain("02", "inject") | AFTER_INJECT


@pytest.mark.slow
def test_lora_steps_of_one_style_rerun_its_chain_only(workflow):
    edit_config(workflow, styles={"02": {"lora_steps": 3}})
    assert pending(workflow) == chain("02", "train_lora", "generate", "invert_content", "inject") | AFTER_INJECT


@pytest.mark.slow
def test_inversion_steps_rerun_inversions_and_injections(workflow):
    edit_config(workflow, inversion_steps=4)
    assert pending(workflow) == AFTER_INJECT.union(
        *(chain(style, "invert_style", "invert_content", "inject") for style in STYLES))


@pytest.mark.slow
def test_touched_inputs_rerun_nothing(workflow):
    for path in (workflow / "data").rglob("*"):
        os.utime(path)
    assert pending(workflow) == set()


@pytest.mark.slow
def test_new_prompt_does_not_retrain(workflow):
    path = workflow / "data/01/prompt.json"
    prompts = json.loads(path.read_text())
    path.write_text(json.dumps({**prompts, "9": "A new prompt"}))
    assert pending(workflow) == chain("01", "generate", "invert_content", "inject") | AFTER_INJECT


@pytest.mark.slow
def test_sweep_reuses_the_caches(workflow):
    edit_config(workflow, sweep={"gamma": [0.25, 0.5], "temperature": []})
    assert pending(workflow) == chain("01", "inject") | chain("02", "inject") | AFTER_INJECT  # one job per style
    assert setting_folders(inject_settings(workflow, "02")) == [
        "results/02/styleid", "results/02/sweep/g0.25_t1.5", "results/02/sweep/g0.5_t1.5"]
    snakemake(workflow, "--cores", "2")
    html = "".join((workflow / f"results/report/style-{style}.html").read_text() for style in STYLES)
    assert html.count("<h3>Sweep</h3>") == 2 and "<th>gamma 0.25, T 1.5</th><th>gamma 0.5, T 1.5</th>" in html
    assert 'data-full="../01/sweep/g0.25_t1.5/Bird.png"' in html and 'data-full="../02/sweep/g0.5_t1.5/Tree.png"' in html


@pytest.mark.slow
def test_recomputed_features_rerun_inversions_without_features(workflow):
    edit_config(workflow, features="recompute")
    assert pending(workflow) == AFTER_INJECT.union(
        *(chain(style, "invert_style", "invert_content", "inject") for style in STYLES))
    inversions = commands(workflow, "jstyleid invert")
    assert len(inversions) == 4 and all("--features recompute" in line for line in inversions)


# Dry runs of a fresh copy: the DAG and commands a configuration gives.

def commands(workdir, start):
    """The shell commands of a dry run that start with `start`, each `--args-file FILE` replaced by
    the options FILE holds (the manifest jobs, which run no model, are run first to write them)."""
    snakemake(workdir, "--cores", "1", "--until", "manifest")
    lines = snakemake(workdir, "-n", "-p").stdout.splitlines()
    lines = [with_args_files(workdir, line.removeprefix("Shell command: ")) for line in lines]
    return [line for line in lines if line.startswith(start)]


def inject_settings(workdir, style):
    """The settings of a style's inject job (its --settings manifest), written by a run of the manifest jobs."""
    snakemake(workdir, "--cores", "1", "--until", "manifest")
    return json.loads((workdir / f"results/manifests/inject_settings/{style}.json").read_text())


def setting_folders(settings):
    return [str(Path(s["out"][0]).parent) for s in settings]


def with_args_files(workdir, line):
    def expand(match):
        options = json.loads((workdir / match[1]).read_text())
        return " ".join(shlex.join([option, *map(str, v if isinstance(v, list) else [v])]) for option, v in options.items())

    return re.sub(r"--args-file (\S+)", expand, line)


def test_seeded_style_reference_choice(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, style_refs=2)
    first = sorted(commands(workdir, "jstyleid invert --model results/model/tiny --role style"))
    assert len(first) == 2 and all(line.count("/images/") == 2 for line in first)
    assert sorted(commands(workdir, "jstyleid invert --model results/model/tiny --role style")) == first
    edit_config(workdir, style_refs="all", styles={"01": {"style_refs": ["stripes_1.png"]}})
    chosen = [line for line in commands(workdir, "jstyleid invert") if "--role style" in line and "data/01/" in line]
    assert len(chosen) == 1 and "--images data/01/images/stripes_1.png --out" in chosen[0]


def test_user_content_replaces_generation(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    for name in ["Cat", "Lighthouse", "Tree"]:
        (workdir / "mine/02").mkdir(parents=True, exist_ok=True)
        shutil.copy(workdir / "data/02/images/dots_0.png", workdir / f"mine/02/{name}.png")
    edit_config(workdir, styles={"02": {"content_dir": "mine/{style}"}})
    jobs = pending(workdir)
    assert ("generate", "01") in jobs and ("train_lora", "01") in jobs
    assert ("generate", "02") not in jobs and ("train_lora", "02") not in jobs
    assert ("invert_content", "02") in jobs
    assert any("--images mine/02/Cat.png" in line for line in commands(workdir, "jstyleid invert"))


@pytest.mark.parametrize("change, message", [
    (dict(gamma=2), "gamma"),
    (dict(features="sometimes"), "features"),
    (dict(styles={"01": {"model": "x"}}), "model"),
    (dict(styles={"07": {"gamma": 0.5}}), "'07' is not a style folder"),
    (dict(styles={"01": {"gamma": "high"}}), "high"),
    # keys renamed in issue 16: one line naming the new spelling
    (dict(evaluate=True), "config: key `evaluate` is gone; write `evaluation: {enabled: true|false}`"),
    (dict(select=None), "config: `select: null` is spelled `select: none` now"),
    (dict(styles={"01": {"select": None}}), "config styles: 01: `select: null` is spelled `select: none` now"),
])
def test_bad_config_is_refused(tmp_path, change, message):
    assert_config_refused(tmp_path, change, message)


def assert_config_refused(tmp_path, change, message):
    """The dry run of a copy with `change` in its config fails, saying `message`."""
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, **change)
    result = snakemake(workdir, "-n", check=False)
    assert result.returncode != 0 and message in result.stdout + result.stderr


def test_every_rule_declares_its_resources(tmp_path):
    workdir = copy_workflow(tmp_path / "wf")
    edit_config(workdir, sweep={"gamma": [0.5]})
    dry_run = snakemake(workdir, "-n").stdout
    blocks = [block for block in dry_run.split("\n\n") if "rule " in block and "rule all:" not in block]
    assert len(blocks) == 13 + 12  # make_model, 5 per style, submission, report; 5 manifests per style, 2 more
    for block in blocks:
        assert "mem_mb=" in block and "runtime=" in block, block
        assert ("gpu=1" in block) == any(f"rule {r}:" in block for r in
                                         ["train_lora", "generate", "invert_style", "invert_content", "inject"])


# The two stages the workflow ends with, through the CLI.

def stylised_style(root: Path, style: str, prompts: dict) -> tuple[Path, Path]:
    """A style folder with prompt.json, and a folder of 'stylised' images named by prompt."""
    from PIL import Image

    from jstyleid.storage.inputs import safe_filename

    (root / "data" / style).mkdir(parents=True)
    (root / "data" / style / "prompt.json").write_text(json.dumps(prompts))
    out = root / "results" / style / "styleid"
    out.mkdir(parents=True)
    for prompt in prompts.values():
        Image.new("RGB", (16, 16), "red").save(out / f"{safe_filename(prompt)}.png")
    return root / "data" / style / "prompt.json", out


def test_submission_layout_and_mapping(tmp_path):
    from jstyleid.cli import main

    prompts, images = stylised_style(tmp_path, "05", {"0": "Ring", "1": 'A cat: "big"?'})
    assert main(["submission", "--prompts", str(prompts), "--image-dirs", str(images), "--out-dir", str(tmp_path / "sub")]) == 0
    assert sorted(p.name for p in (tmp_path / "sub/05").iterdir()) == ["A cat_ _big__.png", "Ring.png"]
    mapping = json.loads((tmp_path / "sub/mapping.json").read_text())
    assert mapping == {"05": [{"key": "0", "prompt": "Ring", "file": "05/Ring.png"},
                              {"key": "1", "prompt": 'A cat: "big"?', "file": "05/A cat_ _big__.png"}]}


def test_submission_refuses_a_missing_image(tmp_path, capsys):
    from jstyleid.cli import main

    prompts, images = stylised_style(tmp_path, "05", {"0": "Ring"})
    (images / "Ring.png").unlink()
    assert main(["submission", "--prompts", str(prompts), "--image-dirs", str(images), "--out-dir", str(tmp_path / "sub")]) == 2
    assert "Ring.png: no stylised image for prompt 'Ring'" in capsys.readouterr().err
    assert not (tmp_path / "sub").exists()


def test_report_is_offline_with_relative_links(tmp_path):
    from jstyleid.cli import main

    prompts, images = stylised_style(tmp_path, "05", {"0": "Red apple <b>"})
    bench = tmp_path / "results/benchmarks/inject/05.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\tNA\n")
    image = str(images / "Red apple _b_.png")
    manifest = dict(styles=[dict(name="05", prompts=str(prompts), refs=[image], contents=[image],
                                 outputs=str(images), loss=None,
                                 sweep=[dict(gamma=0.25, temperature=1.5, outputs=str(images))])],
                    benchmarks=[str(bench)], config={"model": "builtin:tiny"})
    out = tmp_path / "results/report/index.html"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", "--manifest", str(tmp_path / "manifest.json"), "--out", str(out)]) == 0
    page = out.with_name("style-05.html").read_text()
    assert 'data-full="../05/styleid/Red%20apple%20_b_.png"' in page and "Red apple &lt;b&gt;" in page
    assert "<td>inject</td><td class=num>1</td><td class=num>12.5</td>" in out.read_text()
    assert "<h3>Sweep</h3>" in page and "<th>gamma 0.25, T 1.5</th>" in page
    assert page.count('data-full="../05/styleid/Red%20apple%20_b_.png"') == 5  # ref, content, output; sweep: both
    assert "http" not in page
