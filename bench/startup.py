#!/usr/bin/env python
"""Per-job fixed cost: process start to the first engine call of an `invert` and an `inject` job.

    python bench/startup.py --repeats 5 --out bench/startup-DATE.json

Each probe is a fresh `python bench/startup.py --probe STAGE ARGS...` process that runs the real CLI
(`jstyleid.cli.main`) with the stage's real arguments on the tiny model, with `load_engine` wrapped so
that the process stops as soon as the engine is loaded: what is measured is interpreter start, the CLI
and stage imports, argument parsing, the engine's imports and the model load, i.e. everything before
the first useful work. Wall: from just before the parent spawns the process to the child's time stamp
after `load_engine`; CPU: the child's user + system time at that point. The machine may be shared, so
the best of --repeats wall times is reported beside the CPU times. The probe also lists the heavy
modules the process imported (`HEAVY`). Method and figures: docs/performance.md, "Per-job fixed cost".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("peft", "torchvision", "torch._dynamo", "transformers.models.clip.modeling_clip", "sklearn", "scipy")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="probes per stage (the best wall time is reported)")
    p.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "jstyleid-startup")
    p.add_argument("--out", type=Path, help="JSON results")
    return p.parse_args(argv)


def probe(stage_argv: list[str]) -> None:
    """In the probe process: run the CLI until `load_engine` returns, then print one JSON line and exit."""
    import resource

    import jstyleid.engines as engines

    real = engines.load_engine

    def load_and_stop(*args, **kwargs):
        real(*args, **kwargs)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps(dict(stamp=time.time(), cpu_s=usage.ru_utime + usage.ru_stime,
                              heavy=[m for m in HEAVY if m in sys.modules])), flush=True)
        os._exit(0)  # before the first useful work; no interpreter tear-down to time

    engines.load_engine = load_and_stop  # the stages import it inside run(), so they see this one
    from jstyleid.cli import main

    sys.argv = ["jstyleid", *stage_argv]
    sys.exit(main())  # as the console script calls it: a job's own process


def prepare(work: Path) -> dict[str, list[str]]:
    """The tiny model, one picture and its content and style caches; returns each stage's arguments."""
    from bench import synthetic_images
    from jstyleid.cli import main

    model = work / "tiny"
    if not (model / "model_index.json").is_file():
        assert main(["make-model", "--preset", "tiny", "--out-dir", str(model)]) == 0
    [image] = synthetic_images(work, "img", 1, 64, seed=0)
    common = ["--model", str(model), "--device", "cpu", "--resolution", "64", "--ddim-steps", "3"]
    caches = {role: str(work / f"{role}.h5") for role in ("content", "style")}
    for role, cache in caches.items():
        if not Path(cache).is_file():
            assert main(["invert", *common, "--images", str(image), "--role", role, "--out", cache]) == 0
    invert = ["invert", *common, "--images", str(image), "--role", "content", "--out", str(work / "probe.h5")]
    inject = ["inject", "--model", str(model), "--device", "cpu", "--content-caches", caches["content"],
              "--style-caches", caches["style"], "--out", str(work / "probe.png")]
    return dict(invert=invert, inject=inject)


def run_probe(stage: str, stage_argv: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    start = time.time()
    done = subprocess.run([sys.executable, __file__, "--probe", *stage_argv],
                          capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"start-up probe of {stage} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return dict(wall_s=result["stamp"] - start, cpu_s=result["cpu_s"], heavy=result["heavy"])


def measure(repeats: int, work: Path) -> dict:
    """{stage: best and every wall time, CPU times, heavy modules imported} of `repeats` probes per stage
    after one untimed probe (warm OS file cache)."""
    work.mkdir(parents=True, exist_ok=True)
    results = {}
    for stage, stage_argv in prepare(work).items():
        run_probe(stage, stage_argv)
        runs = [run_probe(stage, stage_argv) for _ in range(repeats)]
        results[stage] = dict(best_wall_s=min(r["wall_s"] for r in runs), wall_s=[r["wall_s"] for r in runs],
                              min_cpu_s=min(r["cpu_s"] for r in runs), cpu_s=[r["cpu_s"] for r in runs],
                              heavy_modules=runs[-1]["heavy"])
    return results


def table(results: dict) -> str:
    lines = ["| job | best wall s | min CPU s | heavy modules imported |", "|---|---|---|---|"]
    for stage, r in results.items():
        lines.append(f"| {stage} | {r['best_wall_s']:.2f} | {r['min_cpu_s']:.2f} | {', '.join(r['heavy_modules']) or '-'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--probe"]:  # internal: one probe process, `--probe` and a jstyleid command line
        probe(argv[1:])
    args = parse_args(argv)
    results = measure(args.repeats, args.work)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
