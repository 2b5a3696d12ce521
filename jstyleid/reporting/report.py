"""`jstyleid report`: the offline HTML pages of a workflow run.

The index (OUT) holds one row per style (its submitted setting's score, a strip of its outputs, a
link to its page), the scores, the time per stage from Snakemake's benchmark files and the config
used; beside it, style-XX.html per style holds a grid of style references | content | output with
the LoRA loss curve, with evaluation a table and chart of every candidate's score, with a lora_steps
sweep each snapshot's validation images beside its best candidate, and for a sweep a grid of content |
one output per setting. At the challenge's size (28 styles x 25 prompts) one page of everything would
hold thousands of pictures; the index stays small and every thumbnail loads lazily. The folder is self-contained: every picture the
page shows is a thumbnail written into its img/ folder (`asset()`), and nothing is loaded from another
host, so the folder can be copied, zipped or mailed. A click on a thumbnail opens the full-size picture
where that is beside the report (../XX/..., i.e. the report still sits in its results/ folder).

The manifest (a JSON file, written by the workflow's report rule):
    {"styles": [{"name": "01", "prompts": "data/01/prompt.json", "refs": [image, ...],
                 "contents": [image per prompt, named {prompt}.*], "outputs": "folder of {prompt}.png",
                 "loss": "loss.png" or null, "validation": LoRA folder with validation/strips.json, or null,
                 ("validation_prompts": the style's own, with a LoRA shared by styles, else absent)
                 "sweep": [{"gamma": 0.5, "temperature": 1.5, "outputs": "folder of {prompt}.png"}, ...]}, ...],
                 (a sweep entry also has "layers" (a label) and "style_refs_mode" when those are swept,
                  with generation variants "variant" and "kind" (evaluation/report.py KINDS);
                  "candidates": content/candidates/scores.json when gen_candidates > 1, else absent or null;
                  "snapshots": [{"step": 250, "settings": [setting label, ...]}, ...] with a lora_steps sweep)
     "benchmarks": ["results/benchmarks/<stage>/<job>.tsv", ...],
     "config": {...},
     "evaluation": null or {"scores": "results/eval/scores.json", "select": {"01": "final" or null, ...},
                            "per_prompt": [styles with select_per prompt] (optional)},
     "failures": [{"style": "03", "stage": "check_inputs", "error": "one line"}, ...],   (optional)
     "store_logs": [{"style": "01", "stage": "generate", "log": "results/logs/generate/01.log"}, ...]}   (optional)
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import os
from pathlib import Path
from urllib.parse import quote

from ..errors import InputError

ASSETS = "img"  # the report folder's own copies of what it shows
THUMB_SIDE = 256  # px, longest side of a thumbnail
STRIP = 8  # outputs per style on the index

CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
td.num { text-align: right; }
tr.won td { background: #e8f5e8; font-weight: bold; }
img.thumb { width: 128px; height: 128px; object-fit: contain; image-rendering: pixelated; }
img.loss { max-width: 480px; }
img.chart { max-width: 100%; }
img.small { width: 48px; height: 48px; object-fit: contain; image-rendering: pixelated; }
.kept img.small { outline: 3px solid #2a2; }
figure.candidate { display: inline-block; margin: 0 4px; text-align: center; font-size: 80%; }
a[data-full] { cursor: zoom-in; }
a.missing { cursor: not-allowed; }
pre { background: #f4f4f4; padding: 1em; }
"""
# A thumbnail's full-size picture is outside the report folder: follow the link only where it loads.
SCRIPT = """
function fullSize(link) {
  return new Promise(resolve => {
    const probe = new Image();
    probe.onload = () => resolve(true);
    probe.onerror = () => resolve(false);
    probe.src = link.dataset.full;
  });
}
document.addEventListener("click", async event => {
  const link = event.target.closest("a[data-full]");
  if (!link || link.href) return;
  event.preventDefault();
  if (await fullSize(link)) {
    link.href = link.dataset.full;
    window.location.href = link.href;
  } else {
    link.title = "the full-size picture is not beside this copy of the report";
    link.classList.add("missing");
  }
});
"""


def write_report(manifest: dict, out) -> None:
    """The page of `manifest` (the module docstring's layout) at `out`, its thumbnails beside it."""
    try:
        styles, benchmarks, config = manifest["styles"], manifest["benchmarks"], manifest["config"]
    except (KeyError, TypeError) as err:
        raise InputError("--manifest", f"not a report manifest ({err!r})") from None
    from ..storage.fileio import atomic_path

    from ..storage.inputs import safe_filename

    from ..evaluation.report import read_scores, section

    out = Path(out)
    evaluation = manifest.get("evaluation")
    scores = read_scores(evaluation) if evaluation else None
    back = f'<p><a href="{quote(out.name)}">All styles</a></p>'
    # Every page is composed before any is written: a missing picture leaves no page behind.
    pages = {out.parent / f"style-{safe_filename(style['name'])}.html": (
        f"jstyleid report: style {style['name']}", [back, _style_section(style, out.parent, evaluation, scores)])
        for style in styles}
    body = [f"<h1>jstyleid report</h1><p>Model: {_e(config.get('model', '?'))}</p>"]
    if manifest.get("failures"):
        body.append(_failures(manifest["failures"]))
    body.append(_index(styles, list(pages), evaluation, scores, out.parent))
    if evaluation:
        kinds = {style["name"]: {Path(entry["outputs"]).name: entry["kind"] for entry in style.get("sweep") or []
                                 if "kind" in entry} for style in styles}
        body.append(section(evaluation, out.parent, kinds, scores))
    if manifest.get("store_logs"):
        body.append(_store_reuse(manifest["store_logs"]))
    body += [_timings(benchmarks), f"<h2>Config</h2><pre>{_e(_yaml(config))}</pre>"]
    pages[out] = ("jstyleid report", body)
    for path, (title, parts) in pages.items():
        page = (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{_e(title)}</title>'
                f"<style>{CSS}</style><script>{SCRIPT}</script></head>\n<body>\n" + "\n".join(parts)
                + "\n</body></html>\n")
        with atomic_path(path) as tmp:
            tmp.write_text(page, encoding="utf-8")


def _index(styles, pages, evaluation, scores, base):
    """One row per style: its page, its submitted setting with that setting's final score (and the
    score that chose it), and a strip of the setting's first outputs."""
    from ..storage.inputs import read_prompts, safe_filename

    scores = _submitted_scores(evaluation, scores) if evaluation else {}
    rows = []
    for style, page in zip(styles, pages):
        names = [safe_filename(p) for p in read_prompts(style["prompts"]).values()][:STRIP]
        submitted = (dict(setting="styleid", outputs=style["outputs"], final=None, chosen_by="")
                     | scores.get(style["name"], {}))
        strip = "".join(_img(Path(submitted["outputs"], f"{name}.png"), base, "small") for name in names)
        score = (f"<td>{_e(submitted['setting'])}</td><td class=num>{_score(submitted['final'])}</td>"
                 f"<td>{_e(submitted['chosen_by'])}</td>" if evaluation else "")
        rows.append(f'<tr><td><a href="{quote(page.name)}">Style {_e(style["name"])}</a></td>{score}'
                    f"<td>{strip}</td></tr>")
    head = "<th>Submitted setting</th><th>Final score</th><th>Chosen by</th>" if evaluation else ""
    return (f"<h2>Styles</h2>\n<table><tr><th>Style</th>{head}<th>Outputs</th></tr>\n" + "\n".join(rows)
            + "</table>")


def _submitted_scores(evaluation, scores):
    """{style: {setting, outputs, final, chosen_by}} of the submitted setting: the `select` choice (with a
    per-prompt choice, the setting that gave the most prompts), else the StyleID outputs."""
    from ..evaluation.report import submitted

    found = {}
    for style, rows in scores["styles"].items():
        choice, metric = submitted(scores, evaluation, style), evaluation["select"].get(style)
        if choice["chosen"]:
            chosen = choice["chosen"]
            found[style] = dict(setting=chosen["setting"], outputs=chosen["outputs"],
                                final=rows.get(chosen["setting"], {}).get("final"),
                                chosen_by=f"{metric} {chosen['value']:.4f}")
        elif choice["wins"]:
            most = max(choice["wins"], key=choice["wins"].get)
            others = sum(1 for count in choice["wins"].values() if count) - 1
            found[style] = dict(setting=f"per prompt: {most}" + (f" and {others} more" if others else ""),
                                outputs=rows[most]["outputs"], final=None, chosen_by=f"{metric} per prompt")
        else:
            found[style] = dict(final=rows.get("styleid", {}).get("final"))
    return found


def _score(value):
    return "" if value is None else f"{value:.4f}"


def _style_section(style, base, evaluation=None, scores=None):
    from ..evaluation.report import style_section
    from ..storage.inputs import read_prompts, safe_filename

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
    loss = (f'<p>LoRA training loss:<br><img class="loss" src="{asset(style["loss"], base, None)}" alt="loss curve"></p>'
            if style.get("loss") else "<p>Content images supplied by the user (no LoRA trained).</p>")
    return (f"<h2>Style {_e(style['name'])}</h2>\n<table><tr><th>Style references</th><th>Prompt</th>"
            f"<th>Content</th><th>Output</th></tr>\n" + "\n".join(rows) + f"</table>\n{loss}"
            + _validation_strips(style.get("validation"), base, style.get("validation_prompts"))
            + (style_section(evaluation, style["name"], base, scores) if evaluation else "")
            + _snapshots(style, base, evaluation, scores)
            + _sweep_grid(style.get("sweep") or [], prompts, contents, base)
            + _candidates_grid(style.get("candidates"), prompts, base))


def _validation_strips(lora_dir, base, prompts=None):
    """Per validation prompt (of `prompts`, default all), its images across the LoRA training steps
    (jstyleid/training/validation.py)."""
    from ..training.validation import strips_html

    return strips_html(lora_dir, lambda path: _img(path, base), prompts) if lora_dir else ""


def _snapshots(style, base, evaluation, scores):
    """Per LoRA snapshot of a lora_steps sweep: the validation images of its step and its best candidate."""
    from ..evaluation.report import snapshot_scores
    from ..training.validation import step_images

    if not style.get("snapshots"):
        return ""
    metric, bests = snapshot_scores(evaluation, scores, style["name"], style["snapshots"])
    rows = []
    for snapshot, best in zip(style["snapshots"], bests):
        images = (step_images(style["validation"], snapshot["step"], style.get("validation_prompts"))
                  if style.get("validation") else [])
        strip = "".join(_img(path, base, "small") for _, path in images) or "&ndash;"
        label = _e(best["label"]) + (" (submitted)" if best["submitted"] else "") if best["label"] else "&ndash;"
        rows.append(f"<tr{' class=won' if best['submitted'] else ''}><td class=num>{snapshot['step']}</td><td>{strip}"
                    f"</td><td class=num>{len(snapshot['settings'])}</td><td>{label}</td>"
                    f"<td class=num>{_score(best['value'])}</td></tr>")
    return ("\n<h3>LoRA snapshots</h3>\n<table><tr><th>Step</th><th>Validation images</th><th>Candidates</th>"
            f"<th>Best candidate</th><th>{_e(metric)}</th></tr>\n" + "\n".join(rows)
            + "</table><p>Each step of the one training that a chain generated with: the validation prompts at "
            "that step, and its best candidate (submitted: the submission takes from this snapshot).</p>")


def _sweep_grid(sweep, prompts, contents, base):
    """Rows: prompts; columns: the content, then one output per (gamma, temperature) of the sweep."""
    from ..storage.inputs import safe_filename

    if not sweep:
        return ""
    head = "".join(f"<th>{_e(_sweep_heading(run))}</th>" for run in sweep)
    rows = []
    for prompt in prompts:
        name = safe_filename(prompt)
        cells = "".join(f"<td>{_img(Path(run['outputs'], f'{name}.png'), base)}</td>" for run in sweep)
        rows.append(f"<tr><td>{_e(prompt)}</td><td>{_img(contents[name], base)}</td>{cells}</tr>")
    return (f"\n<h3>Sweep</h3>\n<table><tr><th>Prompt</th><th>Content</th>{head}</tr>\n"
            + "\n".join(rows) + "</table>")


def _candidates_grid(scores_file, prompts, base):
    """Per prompt, every generated candidate small with its score; the kept one outlined (jstyleid.pipelines.candidates)."""
    from ..storage.inputs import safe_filename

    if not scores_file:
        return ""
    try:
        scores = json.loads(Path(scores_file).read_text(encoding="utf-8"))
        metric, table = scores["metric"], scores["prompts"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(scores_file, f"not a candidates score file ({err!r})") from None
    rows = []
    for prompt in prompts:
        name = safe_filename(prompt)
        entry = table[name]
        figures = "".join(
            f'<figure class="candidate{" kept" if k == entry["kept"] else ""}">'
            f'{_img(Path(scores_file).parent / str(k) / f"{name}.png", base, "small")}'
            f"<figcaption>{score:.3f}</figcaption></figure>" for k, score in enumerate(entry["scores"]))
        rows.append(f"<tr><td>{_e(prompt)}</td><td>{figures}</td></tr>")
    return (f"\n<h3>Candidates</h3>\n<p>Kept (outlined): the best {_e(metric)} score of each prompt's candidates.</p>"
            f"\n<table><tr><th>Prompt</th><th>Candidates ({_e(metric)})</th></tr>\n" + "\n".join(rows) + "</table>")


def _sweep_heading(run):
    """[lora250_s0.6: ]gamma 0.5, T 1.5 [, layers sd21_7to11] [, refs rotate]: the generation variant, the
    layers and the reference mode when swept."""
    extra = [f", layers {run['layers']}" if "layers" in run else "",
             f", refs {run['style_refs_mode']}" if "style_refs_mode" in run else ""]
    variant = f"{run['variant']}: " if "variant" in run else ""
    return f"{variant}gamma {run['gamma']}, T {run['temperature']}" + "".join(extra)


def _failures(failures):
    """The styles that did not run (refused at start), with the one line saying why."""
    from .outcome import Failure, html_table

    return ("<h2>Failed</h2>\n" + html_table([Failure(f["style"], f["stage"], f["error"]) for f in failures])
            + "<p>These styles are not in this report; fix what is named and run again.</p>")


def _store_reuse(jobs):
    """Per style and stage, how many images the last job took from the per-image store and computed."""
    from ..storage.store import reuse_counts

    rows = [(job, reuse_counts(job["log"])) for job in jobs]
    cells = "\n".join(f"<tr><td>{_e(job['style'])}</td><td>{_e(job['stage'])}</td><td class=num>{reused}</td>"
                      f"<td class=num>{computed}</td></tr>" for job, (reused, computed) in
                      ((job, counts) for job, counts in rows if counts))
    return ("<h2>Per-image store</h2>\n<table><tr><th>Style</th><th>Stage</th><th>From the store</th>"
            f"<th>Computed</th></tr>\n{cells}</table><p>What the last job of each stage took from the store "
            "(finished before, e.g. by a killed job) and what it computed (docs/reliability.md).</p>")


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


def _img(path, base, size="thumb"):
    """A thumbnail inside the report folder, linking to the full-size picture (see SCRIPT)."""
    full = quote(Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix())
    return (f'<a data-full="{full}"><img class="{size}" src="{asset(path, base)}" alt="{_e(Path(path).stem)}"'
            f' title="{_e(path)}" loading="lazy"></a>')


def asset(path, base, max_side: int | None = THUMB_SIDE) -> str:
    """Copy `path` into the report folder `base` (under img/) and return its href relative to `base`.

    An image becomes a thumbnail of at most `max_side` px: PNG when it is that small already (pixels
    kept), else JPEG (small files). `max_side=None` copies any file byte for byte. Names carry a hash
    of the source path, so two sources never share a copy; a copy newer than its source is kept.
    """
    import shutil

    from PIL import Image, UnidentifiedImageError

    from ..storage.fileio import atomic_path, clip_utf8

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file listed in the report manifest does not exist")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    stem = clip_utf8(path.stem, 160)  # the digest names the copy; a prompt near NAME_MAX would pass it
    if max_side is None:
        picture, name = None, f"{stem}-{digest}{path.suffix}"
    else:
        try:
            with Image.open(path) as opened:
                picture = opened.convert("RGBA" if "A" in opened.getbands() else "RGB")
        except (OSError, UnidentifiedImageError) as err:
            raise InputError(path, f"not a readable image ({err})") from None
        small = max(picture.size) <= max_side
        name = f"{stem}-{digest}.{'png' if small else 'jpg'}"
    copy = Path(base) / ASSETS / name
    if not (copy.is_file() and copy.stat().st_mtime >= path.stat().st_mtime):
        with atomic_path(copy) as tmp:
            if picture is None:
                shutil.copyfile(path, tmp)
            elif small:
                picture.save(tmp, format="PNG")
            else:
                picture.thumbnail((max_side, max_side), Image.LANCZOS)
                picture.convert("RGB").save(tmp, format="JPEG", quality=88)
    return quote(f"{ASSETS}/{name}")


def _e(text):
    return html.escape(str(text))


def _yaml(config):
    import yaml

    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
