"""jstyleid/workflow.py, the workflow's Python, called directly: no Snakemake run, no subprocess."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from jstyleid import workflow as wf
from jstyleid.core.layers import PRESETS
from jstyleid.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "schemas/config.schema.yaml"


class Outputs(list):
    """Snakemake's output list: by position and by name."""

    def __init__(self, items, named):
        super().__init__(items)
        self.__dict__.update(named)


def rule(output=(), benchmark="", log=(), **named):
    """A stand-in for Snakemake's `rules.<name>` with the attributes workflow.py reads."""
    return SimpleNamespace(output=Outputs(output, named), benchmark=benchmark, log=list(log))


RULES = SimpleNamespace(
    make_model=rule(["results/model/{preset}"], "results/benchmarks/make_model/{preset}.tsv"),
    train_lora=rule(
        benchmark="results/benchmarks/train_lora/{style}.tsv",
        weights="results/{style}/lora/pytorch_lora_weights.safetensors",
        loss=["results/{style}/lora/loss.csv", "results/{style}/lora/loss.png"],
    ),
    generate=rule(["results/{style}/content"], "results/benchmarks/generate/{style}.tsv",
                  ["results/logs/generate/{style}.log"]),
    invert_style=rule(["results/{style}/cache/style"], "results/benchmarks/invert_style/{style}.tsv",
                      ["results/logs/invert_style/{style}.log"]),
    invert_content=rule(["results/{style}/cache/content"], "results/benchmarks/invert_content/{style}.tsv",
                        ["results/logs/invert_content/{style}.log"]),
    generate_variant=rule(["results/{style}/variants/{variant}/content"],
                          "results/benchmarks/generate/{style}/{variant}.tsv"),
    invert_content_variant=rule(["results/{style}/variants/{variant}/cache/content"],
                                "results/benchmarks/invert_content/{style}/{variant}.tsv"),
    inject=rule(["results/{style}/styleid", "results/{style}/sweep"], "results/benchmarks/inject/{style}.tsv",
                ["results/logs/inject/{style}.log"], styleid="results/{style}/styleid", sweep="results/{style}/sweep"),
    submission=rule(["results/submission"], "results/benchmarks/submission/all.tsv"),
    evaluate=rule(["results/eval/scores.json"], "results/benchmarks/evaluate/all.tsv"),
)


def test_stand_in_rules_use_the_rule_files_paths():
    text = "".join(p.read_text() for p in (ROOT / "rules").glob("*.smk"))
    templates = [RULES.make_model.output[0], RULES.train_lora.output.weights, RULES.inject.output.sweep]
    templates += [getattr(RULES, name).output[0] for name in ("generate", "inject", "evaluate", "generate_variant",
                                                              "invert_content_variant")]
    missing = [t for t in templates if f'"{t}"' not in text]
    assert not missing, missing


def make_config(styles_dir: Path, **changes) -> dict:
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["evaluation"]["enabled"] = changes.pop("evaluate", False)
    config.update(styles_dir=str(styles_dir), **changes)
    validate(config, str(SCHEMA))  # fills in the schema's defaults
    return config


@pytest.fixture
def styles_dir(tmp_path):
    for style in ("01", "02"):
        shutil.copytree(ROOT / "data" / style, tmp_path / "data" / style)
    return tmp_path / "data"


def plan(styles_dir, usable=("01", "02"), **changes) -> wf.Plan:
    return wf.Plan(make_config(styles_dir, **changes), list(usable), RULES)


def test_setting_takes_the_style_override_else_the_global_value(styles_dir):
    config = make_config(styles_dir, gamma=0.75, styles={"02": {"gamma": 0.5}})
    assert (wf.setting(config, "01", "gamma"), wf.setting(config, "02", "gamma")) == (0.75, 0.5)


def test_style_folders_and_refusals(styles_dir):
    (styles_dir / "03").mkdir()  # neither images/ nor prompt.json: not a style folder
    (styles_dir / "04" / "images").mkdir(parents=True)
    (styles_dir / "04" / "prompt.json").write_text('{"0": "Bird"}')
    folders = wf.style_folders(styles_dir)
    assert folders == ["01", "02", "04"]
    refused = wf.refused_styles(styles_dir, folders)
    assert list(refused) == ["04"] and "contains no images" in refused["04"]
    with pytest.raises(InputError, match="no usable style folders.*contains no images"):
        wf.check_usable(styles_dir, [], refused)


def test_an_override_of_an_unknown_style_is_refused(styles_dir):
    config = make_config(styles_dir, styles={"07": {"gamma": 0.5}})
    with pytest.raises(InputError, match="config styles: '07' is not a style folder"):
        wf.check_override_styles(config, ["01", "02"])


def test_style_refs_all_named_or_a_repeatable_draw(styles_dir):
    everything = plan(styles_dir).style_refs("01")
    assert [p.name for p in everything] == ["stripes_0.png", "stripes_1.png", "stripes_2.png"]
    drawn = plan(styles_dir, style_refs=2).style_refs("01")
    assert len(drawn) == 2 and set(drawn) < set(everything) and drawn == plan(styles_dir, style_refs=2).style_refs("01")
    assert plan(styles_dir, style_refs=["stripes_1.png"]).style_refs("01") == [everything[1]]
    with pytest.raises(InputError, match=r"style_refs of style 01: no such images .*\['nope.png'\]"):
        plan(styles_dir, style_refs=["nope.png"]).style_refs("01")


def test_content_is_generated_unless_the_style_brings_its_own(styles_dir, tmp_path):
    generated = plan(styles_dir)
    assert generated.content_input("01") == ["results/01/content"]
    assert generated.content_images("01") == ["results/01/content/Bird.png", "results/01/content/Sailing ship.png"]
    (tmp_path / "mine" / "01").mkdir(parents=True)
    (tmp_path / "mine" / "01" / "Bird.jpg").write_bytes(b"")
    own = plan(styles_dir, content_dir=str(tmp_path / "mine" / "{style}"))
    folder = tmp_path / "mine" / "01"
    assert own.content_input("01") == [folder / "Bird.jpg", folder / "Sailing ship.png"]  # the missing one named
    assert own.loss_curve("01") is None and generated.loss_curve("01") == "results/01/lora/loss.png"


def test_model_is_the_built_preset_or_the_spec(styles_dir, tmp_path):
    assert plan(styles_dir).model == "results/model/tiny" and plan(styles_dir).model_input() == ["results/model/tiny"]
    hub = plan(styles_dir, model="stabilityai/stable-diffusion-2-1-base")
    assert hub.model == "stabilityai/stable-diffusion-2-1-base" and hub.model_input() == []
    assert plan(styles_dir, model=str(tmp_path)).model_input() == [str(tmp_path)]


def test_sweep_settings_one_per_combination_labelled_by_what_varies(styles_dir):
    sweeping = plan(styles_dir, sweep=dict(gamma=[0.5, 0.75], temperature=[], layers=["spec6", "sd21_7to11"]))
    points = sweeping.sweep_settings("01")
    labels = [p["label"] for p in points]
    assert labels == ["g0.5_t1.5_spec6", "g0.5_t1.5_sd21_7to11", "g0.75_t1.5_spec6", "g0.75_t1.5_sd21_7to11"]
    assert points[1]["outputs"] == "results/01/sweep/g0.5_t1.5_sd21_7to11"
    assert plan(styles_dir).sweep_settings("01") == []


def test_one_inject_job_runs_the_styles_own_setting_then_its_sweep(styles_dir):
    sweeping = plan(styles_dir, gamma=0.5, sweep=dict(gamma=[0.25], temperature=[], layers=["sd21_7to11"]))
    own, swept = sweeping.manifest("inject_settings", "01")
    assert (own["gamma"], swept["gamma"], swept["temperature"]) == (0.5, 0.25, own["temperature"])
    assert own["layers"] == list(PRESETS["spec6"]) and swept["layers"] == list(PRESETS["sd21_7to11"])
    assert own["out"][0].startswith("results/01/styleid/") and swept["out"][0].startswith("results/01/sweep/g0.25_")
    assert len(own["out"]) == len(swept["out"]) == len(sweeping.prompts("01"))
    assert [s["gamma"] for s in plan(styles_dir).manifest("inject_settings", "01")] == [0.75]  # no sweep: one
    assert "--out" not in sweeping.manifest("inject", "01")  # the outputs travel in the settings
    assert sweeping.all_sweep_outputs() == ["results/01/sweep", "results/02/sweep"]
    assert plan(styles_dir).all_sweep_outputs() == []


def test_layer_flags_are_empty_for_the_spec_six(styles_dir):
    # sd21_7to11 lies within the six: the caches record the six, invert needs no --layers
    assert plan(styles_dir, layers="sd21_7to11").recorded_layers_flag("01") == ""
    outside = "down_blocks.1.attentions.0.transformer_blocks.0.attn1"
    recorded = plan(styles_dir, sweep=dict(layers=["spec6", [outside]])).recorded_layers("01")
    assert recorded == tuple(sorted({*PRESETS["spec6"], outside}))


def test_training_levers_add_no_option_at_their_defaults(styles_dir):
    assert plan(styles_dir).train_lora_levers("01") == ""
    levers = plan(styles_dir, gradient_accumulation_steps=4, lr_scheduler="cosine").train_lora_levers("01")
    assert levers == "--lr-scheduler cosine --lr-warmup-steps 0 --gradient-accumulation-steps 4"
    with pytest.raises(InputError, match="style 01: validation_every is set but validation_prompts is empty"):
        plan(styles_dir, validation_every=5, validation_prompts=[]).train_lora_levers("01")


def test_styles_with_equal_class_settings_share_one_class_image_set(styles_dir):
    shared = plan(styles_dir, class_prompt="a painting")
    assert shared.class_images_dir("01") == shared.class_images_dir("02") is not None
    assert list(shared.class_image_sets()) == [shared.class_images_dir("01").rsplit("/", 1)[1]]
    split = plan(styles_dir, class_prompt="a painting", styles={"02": {"num_class_images": 7}})
    assert split.class_images_dir("01") != split.class_images_dir("02") and len(split.class_image_sets()) == 2
    assert plan(styles_dir).class_images_dir("01") is None and plan(styles_dir).class_image_sets() == {}


def test_generate_levers_add_no_option_by_default(styles_dir):
    default = plan(styles_dir)
    assert (default.init_args("01"), default.candidates_args("01"), default.candidates_entry("01")) == ({}, {}, {})
    assert set(default.generate_args("01")) == {"--prompt", "--out"}
    picking = plan(styles_dir, gen_candidates=3, gen_candidates_metric="dino")
    args = picking.candidates_args("01")
    assert (args["--candidates"], args["--candidates-metric"], len(args["--references"])) == (3, "dino", 3)
    assert args["--metric-weights"] == picking.config["evaluation"]["dino"]
    assert picking.candidates_entry("01") == dict(candidates="results/01/content/candidates/scores.json")
    assert set(plan(styles_dir, gen_init="style_mean").init_args("01")) == {"--init-mean", "--strength"}


def test_benchmarks_follow_the_pipeline_and_what_is_run(styles_dir):
    files = plan(styles_dir, usable=["01"]).benchmarks()
    assert files == [
        "results/benchmarks/make_model/tiny.tsv",
        "results/benchmarks/train_lora/01.tsv",
        "results/benchmarks/generate/01.tsv",
        "results/benchmarks/invert_style/01.tsv",
        "results/benchmarks/invert_content/01.tsv",
        "results/benchmarks/inject/01.tsv",
        "results/benchmarks/submission/all.tsv",
    ]
    assert plan(styles_dir, usable=["01"], evaluate=True).benchmarks()[-1] == "results/benchmarks/evaluate/all.tsv"


def test_selection_waits_for_the_scores_only_when_a_style_selects(styles_dir):
    assert plan(styles_dir).selection_args() == {} and plan(styles_dir).selection_inputs() == []
    selecting = plan(styles_dir, styles={"02": {"select": "final"}})
    assert selecting.evaluating()
    assert selecting.selection_args() == {"--scores": "results/eval/scores.json", "--select": ["none", "final"]}



def schema_refusal(settings, where="config") -> str:
    """The line common.smk gives for Snakemake's refusal of `settings` (from the jsonschema error under it)."""
    with pytest.raises(WorkflowError) as refused:
        validate(settings, str(SCHEMA))
    return wf.validation_line(where, refused.value.__context__)


# The DDIM step keys: generation (also of the class images and validation strips) and inversion.
@pytest.mark.parametrize("key", ["gen_steps", "inversion_steps"])
def test_ddim_steps_below_two_are_refused_at_config_validation_in_one_line(styles_dir, key):
    config = make_config(styles_dir)
    assert schema_refusal({**config, key: 1}) == f"config {key}: 1 is less than the minimum of 2"
    assert schema_refusal({**config, key: 1}, "config styles 02") == f"config styles 02 {key}: 1 is less than the minimum of 2"
    assert make_config(styles_dir, **{key: 2})[key] == 2


def test_a_per_style_key_outside_the_schemas_list_is_named(styles_dir):
    line = schema_refusal(make_config(styles_dir) | {"styles": {"01": {"model": "x"}}})
    assert line.startswith("config styles.01: 'model' is not one of ['resolution'") and "\n" not in line


def test_the_disk_check_counts_the_layers_the_caches_record(styles_dir, monkeypatch, tmp_path):
    from jstyleid.storage.diskspace import planned_cache_bytes

    monkeypatch.chdir(tmp_path)  # no cache written yet: every file is still to come
    outside = "down_blocks.1.attentions.0.transformer_blocks.0.attn1"
    six = plan(styles_dir, usable=["01"])
    more = plan(styles_dir, usable=["01"], sweep=dict(layers=["spec6", [outside]]))
    assert {entry[3] for entry in six.planned_caches()} == {PRESETS["spec6"]}
    assert [len(entry[4]) for entry in six.planned_caches()] == [2, 3]  # two prompts, three references
    assert {entry[3] for entry in more.planned_caches()} == {more.recorded_layers("01")}
    assert planned_cache_bytes("builtin:tiny", more.planned_caches()) > planned_cache_bytes(
        "builtin:tiny", six.planned_caches()) > planned_cache_bytes("builtin:tiny", six.planned_caches(), features="recompute")
    # common.smk checks the disk before the rule files define any rule
    before_rules = wf.Plan(more.config, more.styles, SimpleNamespace())
    assert list(before_rules.planned_caches()) == list(more.planned_caches())


@pytest.mark.parametrize("key, value, lever", [
    ("lora_text_encoder", True, "a text-encoder LoRA"),
    ("class_prompt", "a painting", "prior preservation"),
    ("gradient_accumulation_steps", 2, "gradient accumulation"),
])
def test_jittor_refuses_the_levers_it_cannot_train_before_any_job(styles_dir, key, value, lever):
    config = make_config(styles_dir, engine="jittor", styles={"02": {key: value}})
    with pytest.raises(InputError, match=rf"^config {key} \(style 02\): the Jittor engine cannot train {lever}"):
        wf.check_engine_levers(config, ["01", "02"])
    wf.check_engine_levers({**config, "engine": "torch"}, ["01", "02"])  # torch trains them
    brings_content = {"02": {key: value, "content_dir": "mine/{style}"}}
    wf.check_engine_levers(dict(config, styles=brings_content), ["01", "02"])  # no LoRA trained for 02


def rule_blocks() -> dict[str, str]:
    """{rule name: its text} of every rule (and `use rule ... as NAME with:`) in rules/*.smk."""
    blocks = {}
    for path in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=\S)", path.read_text()):
            if match := re.match(r"(?:rule (\w+)|use rule \w+ as (\w+) with):", block):
                blocks[match[1] or match[2]] = block
    return blocks


def test_every_job_times_itself():
    blocks = rule_blocks()
    assert {"make_model", "class_images", "train_lora", "generate", "invert_style", "invert_content", "inject",
            "evaluate", "submission", "report", "check_inputs"} <= set(blocks)
    # the manifest rule runs no program: Snakemake renders its template in the driver
    untimed = [name for name, text in blocks.items() if "\n    benchmark:\n" not in text and name != "manifest"]
    assert not untimed, f"rules without a benchmark: file: {untimed}"


def test_config_readme_lists_the_schemas_per_style_keys():
    schema = yaml.safe_load(SCHEMA.read_text())
    per_style = schema["properties"]["styles"]["additionalProperties"]["propertyNames"]["enum"]
    section = (ROOT / "config/README.md").read_text().split("## Per-style overrides", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"`(\w+)`", section.split(":\n", 1)[1])
    assert listed == per_style, f"config/README.md per-style keys differ from the schema's: {set(listed) ^ set(per_style)}"


def test_the_report_shows_the_config_without_the_keys_that_change_no_picture(styles_dir):
    base = plan(styles_dir, styles={"01": {"gamma": 0.5}})
    resumed = plan(styles_dir, lora_checkpoint_every=7, job_runtime=90, gpu_model="a100",
                   styles={"01": {"gamma": 0.5, "lora_checkpoint_every": 0}, "02": {"lora_checkpoint_every": 3}})
    assert resumed.report_manifest() == base.report_manifest()  # its params unchanged: no rerun
    shown = base.shown_config()
    assert shown["styles"] == {"01": {"gamma": 0.5}} and shown["lora_steps"] == base.config["lora_steps"]
    assert not set(wf.UNSHOWN_KEYS) & set(shown)
    assert plan(styles_dir, gamma=0.5).report_manifest() != base.report_manifest()
    # issue 19's keys at their defaults are not shown (the report of a run before them stays as it was)
    assert "select_per" not in shown and set(shown["sweep"]) == {"gamma", "temperature", "layers", "style_refs_mode"}
    per_prompt = plan(styles_dir, select="hist", select_per="prompt", sweep=dict(guidance=[5]))
    assert per_prompt.shown_config()["select_per"] == "prompt" and per_prompt.shown_config()["sweep"]["guidance"] == [5]


# -- generation variants of `sweep:` (issue 19): lora_steps snapshots, gen_strength, guidance --

def test_variants_are_the_generation_combinations_other_than_the_styles_own(styles_dir):
    sweeping = plan(styles_dir, lora_steps=2, guidance=7.5, sweep=dict(lora_steps=[1, 2], guidance=[5, 7.5]))
    assert list(sweeping.variants("01")) == ["lora1_cfg5", "lora1_cfg7.5", "lora2_cfg5"]  # lora2_cfg7.5: the own chain
    assert sweeping.variants("01")["lora2_cfg5"] == dict(lora_steps=2, gen_strength=0.8, guidance=5)
    assert plan(styles_dir, sweep=dict(gamma=[0.5])).variants("01") == {}


def test_one_training_to_the_largest_step_keeps_a_snapshot_of_each(styles_dir):
    sweeping = plan(styles_dir, lora_steps=2, sweep=dict(lora_steps=[3, 1]))
    assert sweeping.trained_steps("01") == 3 and sweeping.snapshot_steps("01") == [1, 2, 3]
    assert sweeping.train_lora_levers("01") == "--snapshot-steps 1 2 3"
    weights = "results/01/lora/pytorch_lora_weights.safetensors"
    # the own chain (2 steps) takes its snapshot, the largest step the weights themselves
    assert sweeping.generation_lora("01", weights) == "results/01/lora/snapshots/step-2/pytorch_lora_weights.safetensors"
    assert sweeping.generation_lora("01", weights, "lora3") == weights
    assert plan(styles_dir, lora_steps=2).snapshot_steps("01") == [] and plan(styles_dir).train_lora_levers("01") == ""
    assert plan(styles_dir, lora_steps=2).generation_lora("01", weights) == weights


def test_every_variant_injects_every_setting_from_its_own_caches(styles_dir):
    sweeping = plan(styles_dir, gen_init="style_mean", sweep=dict(gen_strength=[0.5], gamma=[0.25, 0.75]))
    labels = [s["label"] for s in sweeping.sweep_settings("01")]
    assert labels == ["g0.25_t1.5", "g0.75_t1.5", "s0.5_g0.75_t1.5", "s0.5_g0.25_t1.5"]  # own setting first, once
    settings = sweeping.manifest("inject_settings", "01")
    assert [s.get("content_caches", [""])[0] for s in settings] == [""] * 3 + [
        "results/01/variants/s0.5/cache/content/Bird.h5"] * 2
    assert settings[3]["out"][0] == "results/01/sweep/s0.5_g0.75_t1.5/Bird.png"
    assert sweeping.manifest("generate", "01/s0.5")["--strength"] == 0.5
    assert sweeping.manifest("generate", "01")["--strength"] == 0.8
    assert sweeping.manifest("invert_content", "01/s0.5") == {
        "--images": [f"results/01/variants/s0.5/content/{name}.png" for name in sweeping.prompts("01")],
        "--out": [f"results/01/variants/s0.5/cache/content/{name}.h5" for name in sweeping.prompts("01")]}
    # evaluate scores every candidate, so select chooses over the whole chain
    assert [s["label"] for s in sweeping.eval_settings("01")] == ["content", "styleid", *labels]
    assert sweeping.variant_cache_folders("01") == ["results/01/variants/s0.5/cache/content"]


def test_a_generation_variant_only_adds_to_the_benchmarks_and_disk_check(styles_dir):
    plain = plan(styles_dir, usable=["01"])
    sweeping = plan(styles_dir, usable=["01"], sweep=dict(guidance=[5]))
    assert sweeping.benchmarks()[:-1] == plain.benchmarks()[:-1] + [
        "results/benchmarks/generate/01/cfg5.tsv", "results/benchmarks/invert_content/01/cfg5.tsv"]
    assert len(list(sweeping.planned_caches())) == len(list(plain.planned_caches())) + 1


@pytest.mark.parametrize("changes, where", [
    (dict(sweep=dict(gen_strength=[0.5])), "config sweep.gen_strength (style 01): gen_init is noise"),
    (dict(content_dir="mine/{style}", sweep=dict(lora_steps=[5])), "config sweep.lora_steps (style 01): the style brings"),
])
def test_a_generation_sweep_that_cannot_run_is_refused_in_one_line(styles_dir, changes, where):
    with pytest.raises(InputError) as refusal:
        plan(styles_dir, **changes).check_sweeps()
    assert str(refusal.value).startswith(where) and "\n" not in str(refusal.value)
