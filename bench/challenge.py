#!/usr/bin/env python
"""The challenge's shape end to end: S styles x 25 prompts x 3 references, tiny model, smallest settings.

    python bench/challenge.py --styles 4 --out bench/challenge-DATE-s4.json     # prints a markdown row

One run of the real workflow (bench/workflow.py's copy of Snakefile, rules, schemas, profiles) with
config/challenge.yaml's settings cut to the smallest (SETTINGS: 64 px, 2 LoRA steps, 2 generation steps,
3 inversion steps), a gamma x temperature sweep, evaluation on random metric networks of the scorer's
classes (jstyleid.evaluation.random_networks) and `select: hist`. Records: wall time;
job count, per rule and per style; the sum of the jobs' own times (results/benchmarks); the per-job fixed
cost (bench/startup.py); the planning time of `snakemake -n` on the fresh folder; the peak RSS of the
snakemake driver process alone (VmHWM of /proc/PID/status, sampled every 0.2 s, its jobs not included);
the report's size (index.html bytes and the folder's total). Method: docs/performance.md,
"The challenge shape: before/after".
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

import startup
from bench import CHALLENGE, save
from workflow import ROOT, copy_workflow, job_times, write_styles

SETTINGS = dict(resolution=64, lora_steps=2, gen_steps=2, inversion_steps=3, batch_size=2, select="hist",
                sweep=dict(gamma=[0.3, 0.9], temperature=[1.2, 1.8]))
ONCE = ("check_inputs", "evaluate", "submission", "report")  # rules that are not per style


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--styles", type=int, default=CHALLENGE["styles"])
    p.add_argument("--cores", type=int, default=os.cpu_count())
    p.add_argument("--gpus", type=int, default=1,
                   help="model jobs at a time (--resources gpu=N, one GPU box); 0: no limit, what "
                        "`snakemake --cores N` does on a CPU machine (and the challenge test)")
    p.add_argument("--startup-repeats", type=int, default=3, help="bench/startup.py probes per stage")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "jstyleid-challenge")
    p.add_argument("--out", type=Path, help="JSON results")
    return p.parse_args(argv)


def peak_rss_of(process: subprocess.Popen) -> int:
    """The largest VmHWM (peak resident set, this process only) seen in /proc until `process` exits, bytes."""
    peak = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:  # exited between poll and read
            break
        peak = max([peak] + [int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmHWM:")])
        time.sleep(0.2)
    return peak


def snakemake(folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--directory", str(folder), "--snakefile", str(folder / "Snakefile"),
            *extra]


def run(args) -> dict:
    from jstyleid.engines.presets import make_model
    from jstyleid.evaluation.random_networks import write_random_networks

    args.work.mkdir(parents=True, exist_ok=True)
    model = args.work / "models" / "tiny"
    if not (model / "model_index.json").is_file():
        make_model("tiny", model)
    config = yaml.safe_load((ROOT / "config" / "challenge.yaml").read_text())
    networks = write_random_networks(args.work / "metric-weights")
    networks.pop("torch_home")
    config.update(SETTINGS, model=str(model.resolve()), styles_dir="data", device="auto",
                  evaluation=dict(config["evaluation"], enabled=True, **networks))
    folder = args.work / f"challenge-s{args.styles}"
    shutil.rmtree(folder, ignore_errors=True)
    write_styles(folder / "data", args.styles, CHALLENGE["prompts"], CHALLENGE["refs"], config["resolution"])
    copy_workflow(folder, config)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")

    start = time.perf_counter()
    plan = subprocess.run(snakemake(folder, "-n", "--cores", str(args.cores), "--quiet", "rules"),
                          capture_output=True, text=True, env=env)
    planning = time.perf_counter() - start
    if plan.returncode:
        raise RuntimeError(f"snakemake -n failed:\n{plan.stderr[-4000:]}")

    log = (folder / "snakemake.log").open("w")
    start = time.perf_counter()
    limit = ["--resources", f"gpu={args.gpus}"] if args.gpus else ["--set-threads", f"evaluate={args.cores}"]
    process = subprocess.Popen(snakemake(folder, "--cores", str(args.cores), *limit),
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    peak = [0]
    sampler = threading.Thread(target=lambda: peak.__setitem__(0, peak_rss_of(process)))
    sampler.start()
    code = process.wait()
    wall = time.perf_counter() - start
    sampler.join()
    log.close()
    if code:
        raise RuntimeError(f"workflow failed; see {folder / 'snakemake.log'}")

    times = job_times(folder / "results")
    per_rule = {rule: len(v) for rule, v in sorted(times.items())}
    report = folder / "results" / "report"
    return dict(
        styles=args.styles, wall_s=wall, planning_s=planning, jobs=sum(per_rule.values()), jobs_per_rule=per_rule,
        jobs_per_style=sum(n for rule, n in per_rule.items() if rule not in ONCE) / args.styles,
        job_time_sum_s=sum(sum(v) for v in times.values()),
        job_time_sum_per_rule_s={rule: sum(v) for rule, v in sorted(times.items())},
        driver_peak_rss_mib=peak[0] / 2**20,
        report_index_bytes=(report / "index.html").stat().st_size,
        report_total_bytes=sum(p.stat().st_size for p in report.rglob("*") if p.is_file()),
        startup=startup.measure(args.startup_repeats, args.work / "startup"))


HEADER = ("| date | styles | model jobs at once | wall min | jobs | jobs/style | sum of job times min | fixed cost/job s (invert, inject; "
          "best wall) | snakemake -n s | driver peak RSS MiB | report index.html KiB | report total MiB |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def row(r: dict, date: str) -> str:
    s = r["startup"]
    return (f"| {date} | {r['styles']} | {r.get('gpus', 1) or 'no limit'} | {r['wall_s'] / 60:.1f} | {r['jobs']} | {r['jobs_per_style']:.1f} | "
            f"{r['job_time_sum_s'] / 60:.1f} | {s['invert']['best_wall_s']:.2f}, {s['inject']['best_wall_s']:.2f} | "
            f"{r['planning_s']:.1f} | {r['driver_peak_rss_mib']:.0f} | {r['report_index_bytes'] / 1024:.0f} | "
            f"{r['report_total_bytes'] / 2**20:.1f} |")


def main(argv=None) -> int:
    args = parse_args(argv)
    results = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cores=args.cores, gpus=args.gpus, host=os.uname().nodename,
                   settings=SETTINGS, **run(args))
    save(results, args.out)
    print(HEADER)
    print(row(results, results["date"][:10]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
