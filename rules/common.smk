"""Config, style discovery and the input functions every rule shares."""

import itertools
import json
import random
import re
from pathlib import Path

from snakemake.utils import validate

from jstyleid.inputs import IMAGE_SUFFIXES, read_prompts, safe_filename, style_images

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
validate(config, SCHEMA)

STYLES_DIR = Path(config["styles_dir"])
STYLES = sorted(p.parent.name for p in STYLES_DIR.glob("*/images") if p.is_dir())
if not STYLES:
    raise WorkflowError(f"{STYLES_DIR}: no style folders (XX/images/) found; set styles_dir")
for style, overrides in config["styles"].items():
    if style not in STYLES:
        raise WorkflowError(f"config styles: {style!r} is not a style folder under {STYLES_DIR}")
    validate({**config, **overrides}, SCHEMA)

wildcard_constraints:
    style="|".join(map(re.escape, STYLES)),
    gamma=r"[0-9.e+-]+",
    temperature=r"[0-9.e+-]+",

ENGINE = f"--engine {config['engine']} --device {config['device']} --dtype {config['dtype']}"
NO_FEATURES = "--no-features" if config["features"] == "recompute" else ""

# Resources of the jobs that run a model; `--resources gpu=N` runs N of them at once (3 per GPU: see README).
MODEL_JOB = dict(mem_mb=config["job_mem_mb"], runtime=config["job_runtime"], gpu=1)
LIGHT_JOB = dict(mem_mb=1000, runtime=10)


def setting(style, key):
    """A setting for one style: its override under `styles:` if any, else the global value."""
    return config["styles"].get(style, {}).get(key, config[key])


def per_style(key):
    """A params function giving `key` for the job's style."""
    return lambda w: setting(w.style, key)


def prompts(style):
    """{file name: prompt as written} of the style's prompt.json."""
    return {safe_filename(p): p for p in read_prompts(STYLES_DIR / style / "prompt.json").values()}


def style_refs(style):
    """The style reference images: all, a named list, or N picked by a seeded (repeatable) draw."""
    images = style_images(STYLES_DIR / style)
    stems = [p.stem for p in images]
    if len(set(stems)) < len(stems):
        raise WorkflowError(f"{STYLES_DIR / style}/images: two images share a name (their caches would too)")
    choice = setting(style, "style_refs")
    if choice == "all":
        return images
    if isinstance(choice, int):
        draw = random.Random(f"{setting(style, 'seed')}/{style}")
        return sorted(draw.sample(images, min(choice, len(images))))
    by_name = {p.name: p for p in images}
    unknown = [name for name in choice if name not in by_name]
    if unknown:
        raise WorkflowError(f"style_refs of style {style}: no such images in {STYLES_DIR / style}/images: {unknown}")
    return [by_name[name] for name in choice]


def user_content(style):
    """The user's content folder for the style, or None when the content is generated."""
    folder = setting(style, "content_dir")
    return Path(folder.format(style=style)) if folder else None


def content_images(style):
    """One content image per prompt: generated into results/, or found in the user's folder."""
    folder = user_content(style)
    if folder is None:
        return files_in(expand(rules.generate.output[0], style=style)[0], prompts(style), ".png")
    return [_find_image(folder, name) for name in prompts(style)]


def content_input(style):
    """What invert_content waits for: the generate job's folder, or the user's images."""
    return content_images(style) if user_content(style) else expand(rules.generate.output[0], style=style)


def _find_image(folder, name):
    found = [folder / f"{name}{s}" for s in sorted(IMAGE_SUFFIXES) if (folder / f"{name}{s}").is_file()]
    return found[0] if found else folder / f"{name}.png"  # a missing file Snakemake will name


def files_in(folder, names, suffix):
    """folder/name+suffix for each name."""
    return [f"{folder}/{name}{suffix}" for name in names]


def sweeps(style):
    """Wildcards of the sweep's injections: every combination of the sweep lists."""
    sweep = config["sweep"]
    if not (sweep["gamma"] or sweep["temperature"]):
        return []
    gammas = sweep["gamma"] or [setting(style, "gamma")]
    temperatures = sweep["temperature"] or [setting(style, "temperature")]
    return [dict(style=style, gamma=g, temperature=t) for g, t in itertools.product(gammas, temperatures)]


def loss_curve(style):
    """The LoRA loss curve PNG of the style; None when its content is the user's (no LoRA)."""
    return None if user_content(style) else expand(rules.train_lora.output.loss[1], style=style)[0]


def validation_strips(style):
    """The LoRA folder whose validation/ strips the report shows; None when validation is off."""
    if user_content(style) or not setting(style, "validation_every"):
        return None
    return str(Path(rules.train_lora.output.weights.replace("{style}", style)).parent)


def benchmarks():
    """The benchmark files of every job the report follows, in pipeline order."""
    generated = [style for style in STYLES if not user_content(style)]
    files = expand(rules.make_model.benchmark, preset=BUILTIN) if BUILTIN else []
    files += expand(rules.train_lora.benchmark, style=generated) + expand(rules.generate.benchmark, style=generated)
    for stage in (rules.invert_style, rules.invert_content, rules.inject):
        files += expand(stage.benchmark, style=STYLES)
    files += [f for style in STYLES for w in sweeps(style) for f in expand(rules.inject_sweep.benchmark, **w)]
    return files + [rules.submission.benchmark]


def report_manifest(wildcards):
    """What the report shows: per style (contents and outputs paired by prompt file name), the
    benchmark files and the config. A function of wildcards only, so that Snakemake's params
    trigger reruns the report when any of it changes."""
    styles = [
        dict(name=style, prompts=str(STYLES_DIR / style / "prompt.json"),
             refs=[str(p) for p in style_refs(style)], contents=[str(p) for p in content_images(style)],
             outputs=expand(rules.inject.output[0], style=style)[0], loss=loss_curve(style),
             validation=validation_strips(style),
             sweep=[dict(gamma=w["gamma"], temperature=w["temperature"],
                         outputs=expand(rules.inject_sweep.output[0], **w)[0]) for w in sweeps(style)])
        for style in STYLES
    ]
    return json.dumps(dict(styles=styles, benchmarks=benchmarks(), config=config))
