"""Config, style discovery and the input functions every rule shares."""

import hashlib
import itertools
import json
import random
import re
import shlex
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from jstyleid.storage.inputs import check_style
from jstyleid.storage.diskspace import check_room, planned_cache_bytes
from jstyleid.errors import InputError
from jstyleid.storage.inputs import IMAGE_SUFFIXES, read_prompts, safe_filename, style_images
from jstyleid.core.layers import PRESETS as LAYER_PRESETS, layers_label, resolve_layers

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
validate(config, SCHEMA)

STYLES_DIR = Path(config["styles_dir"])
STYLE_DIRS = sorted(
    p.name for p in STYLES_DIR.glob("[!.]*") if (p / "images").is_dir() or (p / "prompt.json").is_file()
)
# Every style's inputs are checked before any job runs. A refused style is left out (its one line
# comes back as the failure of its check_inputs job, rules/outcome.smk) and the others run.
REFUSED = {}
for style in STYLE_DIRS:
    try:
        check_style(STYLES_DIR / style)
    except InputError as err:
        REFUSED[style] = str(err)
        if workflow.is_main_process:
            logger.warning(f"style {style} refused: {err}")
STYLES = [style for style in STYLE_DIRS if style not in REFUSED]
if not STYLES:
    raise WorkflowError(
        f"{STYLES_DIR}: no usable style folders (XX/images/, XX/prompt.json) found; "
        f"set styles_dir" + "".join(f"; {line}" for line in REFUSED.values())
    )
for style, overrides in config["styles"].items():
    if style not in STYLE_DIRS:
        raise WorkflowError(f"config styles: {style!r} is not a style folder under {STYLES_DIR}")
    validate({**config, **overrides}, SCHEMA)


wildcard_constraints:
    style="|".join(map(re.escape, STYLES)),
    label=r"[^/]+",


ENGINE = f"--engine {config['engine']} --device {config['device']} --dtype {config['dtype']}"
NO_FEATURES = "--no-features" if config["features"] == "recompute" else ""
# The per-image store (jstyleid/storage/store.py); in the shell text, not params: moving it invalidates nothing.
STORE = f" --store {shlex.quote(config['store'])}" if config["store"] else ""

# Resources of the jobs that run a model; `--resources gpu=N` runs N of them at once (3 per GPU: see README).
# Under profiles/slurm-gpu, gpu and gpu_model become `sbatch --gpus=[MODEL:]1`.
MODEL_JOB = dict(mem_mb=config["job_mem_mb"], runtime=config["job_runtime"], gpu=1, gpu_model=config["gpu_model"])
LIGHT_JOB = dict(mem_mb=1000, runtime=10)


def setting(style, key):
    """A setting for one style: its override under `styles:` if any, else the global value."""
    return config["styles"].get(style, {}).get(key, config[key])


def per_style(key):
    """A params function giving `key` for the job's style."""
    return lambda w: setting(w.style, key)


def shown(output, caption, stage, **options):
    """`output` marked for `snakemake --report`: in its style's category, under `stage`, captioned by
    report/<caption>.rst (a directory also needs patterns=[...] naming the files to show)."""
    return report(output, caption=f"../report/{caption}.rst", category="Style {style}", subcategory=stage, **options)


def model_param(wildcards, input):
    """The model a job loads, taken from its input when it is a file (so Snakemake can relocate
    it, e.g. for remote storage), else the hub id."""
    return input.model[0] if input.model else MODEL


def prompts(style):
    """{file name: prompt as written} of the style's prompt.json."""
    return {safe_filename(p): p for p in read_prompts(STYLES_DIR / style / "prompt.json").values()}


def style_refs(style):
    """The style reference images: all, a named list, or N picked by a seeded (repeatable) draw."""
    images = style_images(STYLES_DIR / style)
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


SWEEP_KEYS = ("gamma", "temperature", "layers", "style_refs_mode")


def sweep_settings(style):
    """The injections of the style's `sweep:`, one per combination of its lists (an empty list means
    the style's own setting), each as dict(label, params, wildcards, outputs, shown). The label names
    the folder results/XX/sweep/<label>: g{gamma}_t{T}, then the layers and the reference mode when
    those are swept. `shown`: what the report's column heading says."""
    sweep = setting(style, "sweep")
    swept = [key for key in SWEEP_KEYS if sweep.get(key)]
    if not swept:
        return []
    points = {}
    for values in itertools.product(*(sweep.get(key) or [setting(style, key)] for key in SWEEP_KEYS)):
        params = dict(zip(SWEEP_KEYS, values))
        shown = dict(gamma=params["gamma"], temperature=params["temperature"])
        if "layers" in swept:
            shown["layers"] = layers_label(params["layers"])
        if "style_refs_mode" in swept:
            shown["style_refs_mode"] = params["style_refs_mode"]
        label = "_".join(
            [f"g{params['gamma']}_t{params['temperature']}"]
            + [str(shown[key]) for key in ("layers", "style_refs_mode") if key in shown]
        )
        wildcards = dict(style=style, label=label)
        points[label] = dict(
            label=label,
            params=params,
            wildcards=wildcards,
            shown=shown,
            outputs=expand(rules.inject_sweep.output[0], **wildcards)[0],
        )
    return list(points.values())


def sweep_params(wildcards):
    """The settings of one sweep injection, found by its folder label."""
    points = {p["label"]: p["params"] for p in sweep_settings(wildcards.style)}
    if wildcards.label not in points:
        raise WorkflowError(
            f"results/{wildcards.style}/sweep/{wildcards.label}: not a setting of the sweep "
            f"(labels: {sorted(points)})"
        )
    return points[wildcards.label]


def layers_flag(layers):
    """inject's --layers option for a `layers` setting; none for the spec's six (today's command)."""
    layers = resolve_layers(layers)
    return "" if layers == LAYER_PRESETS["spec6"] else "--layers " + " ".join(layers)


def refs_mode_flag(mode):
    return "" if mode == "pool" else f"--refs-mode {mode}"


def recorded_layers_flag(style):
    """invert's --layers: caches hold the features of every layer the style's injections use (its own
    and its sweep's). Layers among the spec's six need no new caches: those record all six."""
    used = set(resolve_layers(setting(style, "layers")))
    for point in sweep_settings(style):
        used |= set(resolve_layers(point["params"]["layers"]))
    return "" if used <= set(LAYER_PRESETS["spec6"]) else "--layers " + " ".join(sorted(used))


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
    files += [
        f
        for style in STYLES
        for p in sweep_settings(style)
        for f in expand(rules.inject_sweep.benchmark, **p["wildcards"])
    ]
    return files + [rules.submission.benchmark] + ([rules.evaluate.benchmark] if evaluating() else [])


def report_manifest():
    """What the report shows: per style (contents and outputs paired by prompt file name), the
    benchmark files, the config and the styles refused at start (rules/manifests.smk writes it)."""
    styles = [
        dict(
            name=style,
            prompts=str(STYLES_DIR / style / "prompt.json"),
            refs=[str(p) for p in style_refs(style)],
            contents=[str(p) for p in content_images(style)],
            outputs=expand(rules.inject.output[0], style=style)[0],
            loss=loss_curve(style),
            validation=validation_strips(style),
            sweep=[dict(p["shown"], outputs=p["outputs"]) for p in sweep_settings(style)],
            **candidates_entry(style),
        )
        for style in STYLES
    ]
    refused = [dict(style=style, stage="check_inputs", error=line) for style, line in REFUSED.items()]
    return dict(
        styles=styles,
        benchmarks=benchmarks(),
        config=config,
        evaluation=report_evaluation(),
        **({"failures": refused} if refused else {}),
        **({"store_logs": store_logs()} if config["store"] else {}),
    )


def store_logs():
    """The logs of the jobs that use the per-image store: the report counts what each reused."""
    stages = ("generate", "invert_style", "invert_content", "inject")
    return [
        dict(style=style, stage=stage, log=expand(getattr(rules, stage).log[0], style=style)[0])
        for style in STYLES
        for stage in stages
        if stage != "generate" or not user_content(style)
    ]


# -- LoRA training levers (rules/dreambooth.smk) --


def class_images_settings(style):
    """What the style's class images (prior preservation) depend on; None when it is off."""
    prompt = setting(style, "class_prompt")
    if not prompt:
        return None
    return dict(
        model=MODEL,
        engine=config["engine"],
        dtype=config["dtype"],
        prompt=prompt,
        count=setting(style, "num_class_images"),
        resolution=setting(style, "resolution"),
        seed=setting(style, "seed"),
        steps=config["gen_steps"],
        guidance=config["guidance"],
    )


def _class_key(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def class_images_dir(style):
    settings = class_images_settings(style)
    return f"results/class_images/{_class_key(settings)}" if settings else None


def train_lora_levers(style):
    """train-lora options of the training levers; empty at their defaults (the command stays as before)."""
    options = []
    if setting(style, "lr_scheduler") != "constant" or setting(style, "lr_warmup_steps"):
        options += [
            "--lr-scheduler",
            setting(style, "lr_scheduler"),
            "--lr-warmup-steps",
            setting(style, "lr_warmup_steps"),
        ]
    if setting(style, "gradient_accumulation_steps") != 1:
        options += ["--gradient-accumulation-steps", setting(style, "gradient_accumulation_steps")]
    if class_images_dir(style):
        options += [
            "--class-dir",
            class_images_dir(style),
            "--class-prompt",
            setting(style, "class_prompt"),
            "--prior-loss-weight",
            setting(style, "prior_loss_weight"),
        ]
    if setting(style, "lora_text_encoder"):
        options += [
            "--text-encoder-lora",
            "--text-encoder-rank",
            setting(style, "lora_text_encoder_rank"),
            "--text-encoder-lr",
            setting(style, "lora_text_encoder_lr"),
        ]
    if setting(style, "validation_every"):
        prompts = [p.replace("{style}", style) for p in setting(style, "validation_prompts")]
        if not prompts:
            raise WorkflowError(f"style {style}: validation_every is set but validation_prompts is empty")
        options += [
            "--validation-every",
            setting(style, "validation_every"),
            "--validation-prompt",
            *prompts,
            "--validation-steps",
            setting(style, "gen_steps"),
            "--validation-guidance",
            setting(style, "guidance"),
        ]
    return " ".join(shlex.quote(str(option)) for option in options)


wildcard_constraints:
    class_key="[0-9a-f]{16}",


# -- evaluation and selection (rules/evaluate.smk) --


def evaluating():
    return config["evaluate"] or any(setting(style, "select") for style in STYLES)


def eval_settings(style):
    """[{label, outputs, images}] of the style's picture sets: its content images, the StyleID
    outputs and one per sweep setting (labelled by its folder name), whatever keys the sweep varies."""
    names = prompts(style)
    styleid = expand(rules.inject.output[0], style=style)[0]
    sets = [
        dict(
            label="content",
            outputs=str(Path(content_images(style)[0]).parent),
            images=[str(p) for p in content_images(style)],
        ),
        dict(label="styleid", outputs=styleid, images=files_in(styleid, names, ".png")),
    ]
    for point in sweep_settings(style):
        folder = point["outputs"]
        sets.append(dict(label=point["label"], outputs=folder, images=files_in(folder, names, ".png")))
    return sets


def eval_manifest():
    """Every style's references (all its images, as the challenge compares) and picture sets."""
    return dict(
        styles=[
            dict(name=style, refs=[str(p) for p in style_images(STYLES_DIR / style)], settings=eval_settings(style))
            for style in STYLES
        ]
    )


def selection_inputs():
    """What the submission waits for when some style selects its setting: the scores and every sweep."""
    if not any(setting(style, "select") for style in STYLES):
        return []
    return [rules.evaluate.output[0]] + [p["outputs"] for style in STYLES for p in sweep_settings(style)]


def submission_args():
    """The submission's prompt files and output folders, one per style, and --scores/--select when
    some style selects its setting."""
    args = {
        "--prompts": [str(STYLES_DIR / style / "prompt.json") for style in STYLES],
        "--images": expand(rules.inject.output[0], style=STYLES),
    }
    if any(setting(style, "select") for style in STYLES):
        args |= {
            "--scores": rules.evaluate.output[0],
            "--select": [setting(style, "select") or "none" for style in STYLES],
        }
    return args


def report_evaluation():
    """The report's scores section: scores.json and each style's `select`; None without evaluation."""
    if not evaluating():
        return None
    return dict(scores=rules.evaluate.output[0], select={style: setting(style, "select") for style in STYLES})


# -- the disk check before any job runs (rules/outcome.smk) --


def planned_caches():
    """(role, steps, resolution, missing cache files) of every style: what the inversions will write."""
    for style in STYLES:
        steps, resolution = setting(style, "inversion_steps"), setting(style, "resolution")
        for role, names in (("content", prompts(style)), ("style", [p.stem for p in style_refs(style)])):
            folder = f"results/{style}/cache/{role}"
            yield role, steps, resolution, [f for f in files_in(folder, names, ".h5") if not Path(f).exists()]


# Not for --unlock: recovering from a killed driver must work on a full disk too.
if workflow.is_main_process and "--unlock" not in sys.argv:
    try:
        check_room(planned_cache_bytes(config["model"], planned_caches(), features=config["features"]), "results")
    except InputError as err:
        raise WorkflowError(str(err))
