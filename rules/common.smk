"""Config, style discovery and the checks before any job runs; the functions every rule shares are
jstyleid/workflow.py's, bound here to Snakemake's config and rules."""

import re
import shlex
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from jstyleid import workflow as wf
from jstyleid.storage.diskspace import check_room, planned_cache_bytes
from jstyleid.errors import InputError
from jstyleid.storage.inputs import style_images

SCHEMA = workflow.source_path("../schemas/config.schema.yaml")


def validated(settings, where):
    """Snakemake's validate (it fills in the defaults); its refusal (the jsonschema error it was raised from)
    in one line naming `where` and the key."""
    try:
        validate(settings, SCHEMA)
    except WorkflowError as err:
        raise WorkflowError(wf.validation_line(where, err.__context__ or err)) from None


try:
    wf.refuse_old_keys(config)
except InputError as err:
    raise WorkflowError(str(err))
validated(config, "config")

STYLES_DIR = Path(config["styles_dir"])
STYLE_DIRS = wf.style_folders(STYLES_DIR)
# Every style's inputs are checked before any job runs. A refused style is left out (its one line
# comes back as the failure of its check_inputs job, rules/check.smk) and the others run.
REFUSED = wf.refused_styles(STYLES_DIR, STYLE_DIRS)
if workflow.is_main_process:
    for style, line in REFUSED.items():
        logger.warning(f"style {style} refused: {line}")
STYLES = [style for style in STYLE_DIRS if style not in REFUSED]
try:
    wf.check_usable(STYLES_DIR, STYLES, REFUSED)
    wf.check_override_styles(config, STYLE_DIRS)
    for style, overrides in config["styles"].items():
        validated({**config, **overrides}, f"config styles {style}")
    wf.check_engine_levers(config, STYLES)
    wf.check_lora_scope(config, STYLES)
    wf.check_selection(config, STYLES)
except InputError as err:
    raise WorkflowError(str(err))
PLAN = wf.Plan(config, STYLES, rules, REFUSED)
try:
    PLAN.check_sweeps()
except InputError as err:
    raise WorkflowError(str(err))


wildcard_constraints:
    style="|".join(map(re.escape, STYLES)),
    label=r"[^/]+",
    variant=r"[^/]+",
    class_key="[0-9a-f]{16}",


ENGINE = f"--engine {config['engine']} --device {config['device']} --dtype {config['dtype']}"
# The per-image store (jstyleid/storage/store.py); in the shell text, not params: moving it invalidates nothing.
STORE = f" --store {shlex.quote(config['store'])}" if config["store"] else ""

# Resources of the jobs that run a model; `--resources gpu=N` runs N of them at once (3 per GPU: see README).
# Under profiles/slurm-gpu, gpu and gpu_model become `sbatch --gpus=[MODEL:]1`.
MODEL_JOB = dict(mem_mb=config["job_mem_mb"], runtime=config["job_runtime"], gpu=1, gpu_model=config["gpu_model"])
LIGHT_JOB = dict(mem_mb=1000, runtime=10)


def per_style(key):
    """A params function giving `key` for the job's style."""
    return lambda w: setting(w.style, key)


def shown(output, caption, stage, **options):
    """`output` marked for `snakemake --report`: in its style's category, under `stage`, captioned by
    report/<caption>.rst (a directory also needs patterns=[...] naming the files to show)."""
    return report(output, caption=f"../report/{caption}.rst", category="Style {style}", subcategory=stage, **options)


def model_input(wildcards):
    """The model as a job input when it is a folder (the jobs wait for its build)."""
    return PLAN.model_input()


def model_param(wildcards, input):
    """The model a job loads, taken from its input when it is a file (so Snakemake can relocate
    it, e.g. for remote storage), else the hub id."""
    return input.model[0] if input.model else PLAN.model


def class_images_setting(key):
    """A params function giving `key` of the job's class-image set."""
    return lambda w: PLAN.class_image_sets()[w.class_key][key]


# Called by rules and the Snakefile with a style (or nothing); params functions take wildcards.
setting = PLAN.setting
prompts = PLAN.prompts
style_refs = PLAN.style_refs
content_images = PLAN.content_images
content_input = PLAN.content_input
all_sweep_outputs = PLAN.all_sweep_outputs
recorded_layers_flag = PLAN.recorded_layers_flag
init_images = PLAN.init_images
candidate_references = PLAN.candidate_references
class_images_dir = PLAN.class_images_dir
train_lora_levers = PLAN.train_lora_levers
lora_weights = PLAN.lora_weights
shared_lora_images = PLAN.shared_lora_images
shared_lora_setting = PLAN.shared_lora_setting
SHARED = wf.SHARED
trained_steps = PLAN.trained_steps
generation = PLAN.generation
generation_lora = PLAN.generation_lora
variant_cache_folders = PLAN.variant_cache_folders
loss_curve = PLAN.loss_curve
benchmarks = PLAN.benchmarks
evaluating = PLAN.evaluating
selection_inputs = PLAN.selection_inputs
clip_r_words = PLAN.clip_r_words
files_in = wf.files_in
MANIFEST_STAGES = (
    "report",
    "evaluate",
    "submission",
    "generate",
    "train_lora_shared",
    "invert_style",
    "invert_content",
    "inject",
    "inject_settings",
)


def manifest(stage, name="all"):
    """The manifest file of one job: its lists, written by rules/manifests.smk."""
    return f"results/manifests/{stage}/{name}.json"


# Not for --unlock: recovering from a killed driver must work on a full disk too.
if workflow.is_main_process and "--unlock" not in sys.argv:
    try:
        check_room(planned_cache_bytes(config["model"], PLAN.planned_caches(), features=config["features"]), "results")
    except InputError as err:
        raise WorkflowError(str(err))
