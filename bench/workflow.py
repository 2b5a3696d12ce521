#!/usr/bin/env python
"""The workflow end to end on a synthetic set, with K model jobs in flight per GPU (`--resources gpu=K`).

    GPU:        python bench/workflow.py --preset sd21 --styles 2 --in-flight 1 3 --out bench/workflow-DATE.json
    CPU smoke:  python bench/workflow.py --preset tiny --styles 1 --prompts 2 --refs 1 --smoke

Writes S styles x P prompts x R references of synthetic pictures, builds the model once, and runs the real
workflow (snakemake on a copy of Snakefile, rules, schemas and profiles, with config/challenge.yaml's
settings) once per K, each in a fresh folder. Records each run's wall time, the jobs' own times from
results/benchmarks, and the challenge-size figure T x 28 / S (every style's chain of jobs is alike; with few
styles the pipeline's fill and drain make this an over-estimate). Method: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import yaml

from bench import CHALLENGE, environment, save, synthetic_images

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ("Snakefile", "rules", "schemas", "profiles")
SMOKE = dict(resolution=64, lora_steps=2, gen_steps=2, inversion_steps=3, batch_size=2)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="sd21", help="jstyleid make-model preset, built once under --work")
    p.add_argument("--model", help="a diffusers folder instead of a preset")
    p.add_argument("--styles", type=int, default=2)
    p.add_argument("--prompts", type=int, default=CHALLENGE["prompts"])
    p.add_argument("--refs", type=int, default=CHALLENGE["refs"])
    p.add_argument("--in-flight", type=int, nargs="+", default=[1, 2, 3], help="K values: --resources gpu=K")
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE",
                   help="overrides of config/challenge.yaml (values read as YAML)")
    p.add_argument("--smoke", action="store_true", help=f"CPU smoke settings: {SMOKE}")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "jstyleid-bench")
    p.add_argument("--out", type=Path, help="JSON results (written after every run)")
    return p.parse_args(argv)


def write_styles(folder: Path, styles: int, prompts: int, refs: int, res: int) -> None:
    for s in range(styles):
        style = folder / f"{s + 1:02d}"
        synthetic_images(style / "images", "ref", refs, res, seed=100 + s)
        (style / "prompt.json").write_text(json.dumps({str(i): f"Thing {i}" for i in range(prompts)}))


def job_times(results: Path) -> dict:
    """{rule: [seconds of each job]} from Snakemake's benchmark files results/benchmarks/<rule>/<job>.tsv."""
    from jstyleid.reporting.report import read_benchmark

    times = {}
    for tsv in sorted(results.glob("benchmarks/*/*.tsv")):
        times.setdefault(tsv.parent.name, []).append(read_benchmark(tsv)[0])
    return times


def copy_workflow(folder: Path, config: dict) -> None:
    """The workflow's files into `folder`, with `config` as its config.yaml."""
    for name in WORKFLOW:
        shutil.copytree(ROOT / name, folder / name) if (ROOT / name).is_dir() else shutil.copy2(ROOT / name, folder)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def run_workflow(folder: Path, config: dict, k: int, cores: int) -> dict:
    copy_workflow(folder, config)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "snakemake", "--directory", str(folder), "--snakefile",
                           str(folder / "Snakefile"), "--cores", str(cores), "--resources", f"gpu={k}"],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if done.returncode:
        raise RuntimeError(f"workflow with gpu={k} failed:\n{done.stderr[-4000:]}")
    times = job_times(folder / "results")
    styles = len(list((folder / "data").iterdir()))
    return dict(wall_s=wall, job_s=times, model_jobs=sum(len(v) for r, v in times.items() if r not in
                                                         ("check_inputs", "submission", "report")),
                challenge_min=wall * CHALLENGE["styles"] / styles / 60)


def report(results) -> str:
    lines = [f"# jstyleid workflow: {results['device']}, {results['date']}; {results['set']}",
             "| jobs in flight K | wall s | model jobs | sum of job times s | challenge set (x 28 / S) min |",
             "|---|---|---|---|---|"]
    for k, run in results["runs"].items():
        total = sum(sum(v) for v in run["job_s"].values())
        lines.append(f"| {k} | {run['wall_s']:.1f} | {run['model_jobs']} | {total:.1f} | {run['challenge_min']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from jstyleid.engines.devices import device_kind
    from jstyleid.engines.presets import make_model

    args = parse_args(argv)
    config = yaml.safe_load((ROOT / "config" / "challenge.yaml").read_text())
    if args.smoke:  # the smallest settings, and no scores (no metric weights on a smoke machine)
        config.update(SMOKE, evaluation=dict(config["evaluation"], enabled=False))
    config.update({key: yaml.safe_load(value) for key, value in (kv.split("=", 1) for kv in args.config)})
    args.work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else args.work / "models" / args.preset
    if not args.model and not (model / "model_index.json").is_file():
        make_model(args.preset, model)
    config.update(model=str(model.resolve()), styles_dir="data", device="auto")
    # Never claim the GPU here: the jobs must have it. The device is named, not resolved.
    cuda = device_kind("auto") == "cuda"
    host = SimpleNamespace(device="cuda:0" if cuda else "cpu", cuda=cuda, work=args.work)
    results = {key: value for key, value in environment(host).items() if key in ("device", "date", "versions")}
    results.update(settings=dict(vars(args), work=str(args.work), out=str(args.out)), config=config, runs={})
    results["set"] = f"{args.styles} styles x {args.prompts} prompts x {args.refs} references"
    for k in args.in_flight:
        folder = args.work / f"workflow-gpu{k}"
        shutil.rmtree(folder, ignore_errors=True)
        write_styles(folder / "data", args.styles, args.prompts, args.refs, config["resolution"])
        results["runs"][str(k)] = run_workflow(folder, config, k, args.cores)
        save(results, args.out)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
