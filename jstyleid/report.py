"""`jstyleid report`: one offline HTML page of a workflow run.

Per style a grid of style references | content | output with the LoRA loss curve (and, for a
gamma/temperature sweep, a grid of content | one output per setting), the time per stage from
Snakemake's benchmark files, and the config used. Images are linked by relative path
and nothing is loaded from another host, so the page opens offline beside the results.

The manifest (JSON text, written by the workflow's report rule):
    {"styles": [{"name": "01", "prompts": "data/01/prompt.json", "refs": [image, ...],
                 "contents": [image per prompt, named {prompt}.*], "outputs": "folder of {prompt}.png",
                 "loss": "loss.png" or null, "validation": LoRA folder with validation/strips.json, or null,
                 "sweep": [{"gamma": 0.5, "temperature": 1.5, "outputs": "folder of {prompt}.png"}, ...]}, ...],
     "benchmarks": ["results/benchmarks/<stage>/<job>.tsv", ...],
     "config": {...}}
"""

from __future__ import annotations

import csv
import html
import json
import os
from pathlib import Path
from urllib.parse import quote

from .errors import InputError

COMMAND = "report"
HELP = "write an offline HTML report: per style references | content | output, loss curve, timings, config"

CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; }
img.thumb { width: 128px; height: 128px; object-fit: contain; image-rendering: pixelated; }
img.loss { max-width: 480px; }
pre { background: #f4f4f4; padding: 1em; }
"""


def add_arguments(parser):
    parser.add_argument("--manifest", required=True, help="JSON text: the styles, benchmark files and config to show")
    parser.add_argument("--out", required=True, help="the HTML file to write")


def run(args):
    try:
        manifest = json.loads(args.manifest)
        styles, benchmarks, config = manifest["styles"], manifest["benchmarks"], manifest["config"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError("--manifest", f"not a report manifest ({err!r})") from None
    from .fileio import atomic_path

    out = Path(args.out)
    body = [f"<h1>jstyleid report</h1><p>Model: {_e(config.get('model', '?'))}</p>"]
    body += [_style_section(style, out.parent) for style in styles]
    body += [_timings(benchmarks), f"<h2>Config</h2><pre>{_e(_yaml(config))}</pre>"]
    page = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>jstyleid report</title>'
            f"<style>{CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n")
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")


def _style_section(style, base):
    from .inputs import read_prompts, safe_filename

    contents = {Path(c).stem: c for c in style["contents"]}
    prompts = list(read_prompts(style["prompts"]).values())
    refs = "".join(_img(r, base) for r in style["refs"])
    rows = []
    for i, prompt in enumerate(prompts):
        name = safe_filename(prompt)
        if name not in contents:
            raise InputError(style["prompts"], f"no content image for prompt {prompt!r} in the manifest")
        ref_cell = f'<td rowspan="{len(prompts)}">{refs}</td>' if i == 0 else ""
        output = Path(style["outputs"], f"{name}.png")
        rows.append(f"<tr>{ref_cell}<td>{_e(prompt)}</td><td>{_img(contents[name], base)}</td>"
                    f"<td>{_img(output, base)}</td></tr>")
    loss = (f'<p>LoRA training loss:<br><img class="loss" src="{_href(style["loss"], base)}" alt="loss curve"></p>'
            if style.get("loss") else "<p>Content images supplied by the user (no LoRA trained).</p>")
    return (f"<h2>Style {_e(style['name'])}</h2>\n<table><tr><th>Style references</th><th>Prompt</th>"
            f"<th>Content</th><th>Output</th></tr>\n" + "\n".join(rows) + f"</table>\n{loss}"
            + _validation_strips(style.get("validation"), base)
            + _sweep_grid(style.get("sweep") or [], prompts, contents, base))


def _validation_strips(lora_dir, base):
    """Per validation prompt, its images across the LoRA training steps (jstyleid/validation.py)."""
    from .validation import strips_html

    return strips_html(lora_dir, lambda path: _img(path, base)) if lora_dir else ""


def _sweep_grid(sweep, prompts, contents, base):
    """Rows: prompts; columns: the content, then one output per (gamma, temperature) of the sweep."""
    from .inputs import safe_filename

    if not sweep:
        return ""
    head = "".join(f"<th>gamma {_e(run['gamma'])}, T {_e(run['temperature'])}</th>" for run in sweep)
    rows = []
    for prompt in prompts:
        name = safe_filename(prompt)
        cells = "".join(f"<td>{_img(Path(run['outputs'], f'{name}.png'), base)}</td>" for run in sweep)
        rows.append(f"<tr><td>{_e(prompt)}</td><td>{_img(contents[name], base)}</td>{cells}</tr>")
    return (f"\n<h3>Sweep</h3>\n<table><tr><th>Prompt</th><th>Content</th>{head}</tr>\n"
            + "\n".join(rows) + "</table>")


def _timings(files):
    """Wall time and peak memory per stage, from Snakemake benchmark files <stage>/<job>.tsv."""
    stages = {}
    for path in files:
        stages.setdefault(Path(path).parent.name, []).append(read_benchmark(path))
    rows = [
        f"<tr><td>{_e(stage)}</td><td class=num>{len(jobs)}</td><td class=num>{sum(s for s, _ in jobs):.1f}</td>"
        f"<td class=num>{max(s for s, _ in jobs):.1f}</td><td class=num>{max(r for _, r in jobs):.0f}</td></tr>"
        for stage, jobs in stages.items()
    ]
    total = sum(s for jobs in stages.values() for s, _ in jobs)
    return ("<h2>Time per stage</h2>\n<table><tr><th>Stage</th><th>Jobs</th><th>Total (s)</th>"
            "<th>Longest job (s)</th><th>Peak memory (MiB)</th></tr>\n" + "\n".join(rows)
            + f"\n<tr><th>All</th><td></td><th class=num>{total:.1f}</th><td></td><td></td></tr></table>"
            "<p>Wall time of each job, process start and model loading included; jobs may run in parallel.</p>")


def read_benchmark(path):
    """(wall seconds, peak RSS MiB) of a job."""
    try:
        with open(path, newline="") as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        return float(row["s"]), _number(row.get("max_rss"))
    except (OSError, StopIteration, KeyError, ValueError) as err:
        raise InputError(path, f"not a Snakemake benchmark file ({err!r})") from None


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):  # Snakemake writes NA or - where it could not measure
        return 0.0


def _img(path, base):
    if not Path(path).is_file():
        raise InputError(path, "image listed in the report manifest does not exist")
    return f'<img class="thumb" src="{_href(path, base)}" alt="{_e(Path(path).stem)}" title="{_e(path)}">'


def _href(path, base):
    return quote(Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix())


def _e(text):
    return html.escape(str(text))


def _yaml(config):
    import yaml

    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
