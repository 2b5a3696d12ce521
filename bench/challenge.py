#!/usr/bin/env python
"""The challenge's shape end to end: S styles x 25 prompts x 3 references, tiny model, smallest settings.

    python bench/challenge.py --styles 4 --out bench/challenge-DATE-s4.json     # prints a markdown row

One run of the real workflow (bench/workflow.py's copy of Snakefile, rules, schemas, profiles) with
config/challenge.yaml's settings cut to the smallest (SETTINGS: 64 px, 2 LoRA steps, 2 generation steps,
3 inversion steps), a gamma x temperature sweep, evaluation on random metric networks of the scorer's
classes (`metric_weights`, as tests/test_evaluation.py builds them) and `select: hist`. Records: wall time;
job count, per rule and per style; the sum of the jobs' own times (results/benchmarks); the per-job fixed
cost (bench/startup.py); the planning time of `snakemake -n` on the fresh folder; the peak RSS of the
snakemake driver process alone (VmHWM of /proc/PID/status, sampled every 0.2 s, its jobs not included);
the report's size (index.html bytes and the folder's total). Method: docs/performance.md,
"The challenge shape: before/after".
"""

from __future__ import annotations

import argparse
import json
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
    p.add_argument("--startup-repeats", type=int, default=3, help="bench/startup.py probes per stage")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "jstyleid-challenge")
    p.add_argument("--out", type=Path, help="JSON results")
    return p.parse_args(argv)


def metric_weights(root: Path) -> dict:
    """Random DINOv2, CLIP, SqueezeNet (LPIPS) and InceptionV3 (FID) networks of the scorer's classes,
    saved where jstyleid.evaluation reads them; returns the `evaluation` settings that point there.
    Their scores mean nothing; their cost is the real networks' at this size."""
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
    import torchvision
    from transformers import (BitImageProcessor, CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                              CLIPTokenizer, Dinov2Config, Dinov2Model)

    from jstyleid.engines.presets import write_clip_tokenizer
    from jstyleid.evaluation.fid import INCEPTION_FILE
    from jstyleid.evaluation.lpips import SQUEEZENET_FILE

    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             image_size=28, patch_size=14)).save_pretrained(root / "dino")
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28},
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(root / "dino")
    vocab = write_clip_tokenizer(root / "tokenizer")
    CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=vocab - 2,
                         eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16)).save_pretrained(root / "clip")
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=CLIPTokenizer.from_pretrained(root / "tokenizer")).save_pretrained(root / "clip")
    checkpoints = root / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), checkpoints / SQUEEZENET_FILE)
    # torch-fidelity's InceptionV3 built without its weights (it would download them)
    real_load, real_url = tf_inception.FeatureExtractorInceptionV3.load_state_dict, tf_inception.load_state_dict_from_url
    tf_inception.FeatureExtractorInceptionV3.load_state_dict = lambda *a, **k: None
    tf_inception.load_state_dict_from_url = lambda *a, **k: {}
    try:
        inception = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["64"])
    finally:
        tf_inception.FeatureExtractorInceptionV3.load_state_dict, tf_inception.load_state_dict_from_url = real_load, real_url
    torch.save(inception.state_dict(), checkpoints / INCEPTION_FILE)
    return dict(enabled=True, dino=str(root / "dino"), clip=str(root / "clip"), clip_iqa=str(root / "clip"),
                torch_hub=str(root / "hub"))


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

    args.work.mkdir(parents=True, exist_ok=True)
    model = args.work / "models" / "tiny"
    if not (model / "model_index.json").is_file():
        make_model("tiny", model)
    config = yaml.safe_load((ROOT / "config" / "challenge.yaml").read_text())
    config.update(SETTINGS, model=str(model.resolve()), styles_dir="data", device="auto",
                  evaluation=dict(config["evaluation"], **metric_weights(args.work / "metric-weights")))
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
    process = subprocess.Popen(snakemake(folder, "--cores", str(args.cores), "--resources", "gpu=1"),
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


HEADER = ("| date | styles | wall min | jobs | jobs/style | sum of job times min | fixed cost/job s (invert, inject; "
          "best wall) | snakemake -n s | driver peak RSS MiB | report index.html KiB | report total MiB |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def row(r: dict, date: str) -> str:
    s = r["startup"]
    return (f"| {date} | {r['styles']} | {r['wall_s'] / 60:.1f} | {r['jobs']} | {r['jobs_per_style']:.1f} | "
            f"{r['job_time_sum_s'] / 60:.1f} | {s['invert']['best_wall_s']:.2f}, {s['inject']['best_wall_s']:.2f} | "
            f"{r['planning_s']:.1f} | {r['driver_peak_rss_mib']:.0f} | {r['report_index_bytes'] / 1024:.0f} | "
            f"{r['report_total_bytes'] / 2**20:.1f} |")


def main(argv=None) -> int:
    args = parse_args(argv)
    results = dict(date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cores=args.cores, host=os.uname().nodename,
                   settings=SETTINGS, **run(args))
    save(results, args.out)
    print(HEADER)
    print(row(results, results["date"][:10]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
