"""The Snakemake workflow's Python: style discovery, config checks, per-style settings and what each
rule's inputs and options are. Pure functions of the config dict and paths; rules/common.smk binds
them to Snakemake's `config` and `rules` (no snakemake import here, so tests call them directly).

`rules` is anything with Snakemake's rule attributes (`rules.generate.output[0]`, `.benchmark`,
`.log[0]`, `.output.weights`): the path templates are the rule files', read when a function runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .core.layers import PRESETS as LAYER_PRESETS, layers_label, resolve_layers
from .errors import InputError
from .storage.inputs import IMAGE_SUFFIXES, check_style, read_prompts, safe_filename, style_images
from .training.lora import snapshot_file

SWEEP_KEYS = ("gamma", "temperature", "layers", "style_refs_mode")  # injection keys: the same caches
# Generation keys of `sweep:` and their label prefixes: each combination is a chain of its own (a variant)
VARIANT_KEYS = dict(lora_steps="lora", gen_strength="s", guidance="cfg")
CANDIDATE_WEIGHTS = dict(dino="dino", clip_r="clip")  # the `evaluation:` key naming each metric's weights
BUILTIN_PREFIX = "builtin:"
# Keys that change no picture (resumption, what the scheduler is asked for): the report leaves them out
# of the config it shows, so that changing them does not rerun it (its manifest is a params).
UNSHOWN_KEYS = ("lora_checkpoint_every", "job_mem_mb", "job_runtime", "gpu_model")


def style_folders(styles_dir: Path) -> list[str]:
    """The style folders under styles_dir: those with images/ or prompt.json."""
    return sorted(
        p.name for p in Path(styles_dir).glob("[!.]*") if (p / "images").is_dir() or (p / "prompt.json").is_file()
    )


def refused_styles(styles_dir: Path, folders) -> dict[str, str]:
    """{style: the one line of its refusal} of the folders whose inputs check_style refuses."""
    refused = {}
    for style in folders:
        try:
            check_style(Path(styles_dir) / style)
        except InputError as err:
            refused[style] = str(err)
    return refused


def validation_line(where: str, error) -> str:
    """One line of a schema refusal (a jsonschema ValidationError): `where`, the key's path, what is wrong."""
    path = ".".join(map(str, getattr(error, "absolute_path", ())))
    return f"{where}{' ' + path if path else ''}: {getattr(error, 'message', error)}"


def check_usable(styles_dir: Path, styles, refused: dict[str, str]) -> None:
    if not styles:
        raise InputError(
            styles_dir,
            "no usable style folders (XX/images/, XX/prompt.json) found; set styles_dir"
            + "".join(f"; {line}" for line in refused.values()),
        )


def check_override_styles(config: dict, folders) -> None:
    """Every style named under `styles:` is a style folder."""
    for style in config["styles"]:
        if style not in folders:
            raise InputError("config styles", f"{style!r} is not a style folder under {config['styles_dir']}")


# Config keys renamed in issue 16: refused in one line naming the new spelling, before the schema
# (whose message would not say what the key became): old key -> what to write instead.
RENAMED_KEYS = {"evaluate": "evaluation: {enabled: true|false}"}


def refuse_old_keys(config: dict, where: str = "config") -> None:
    """Raise InputError for the first old key of `config` or of a per-style override in `styles`."""
    places = [(where, config)] + [(f"{where} styles: {style}", overrides)
                                  for style, overrides in (config.get("styles") or {}).items()
                                  if isinstance(overrides, dict)]
    for place, settings in places:
        for old, new in RENAMED_KEYS.items():
            if old in settings:
                raise InputError(place, f"key `{old}` is gone; write `{new}`")
        if "select" in settings and settings["select"] is None:
            raise InputError(place, "`select: null` is spelled `select: none` now (as on the CLI)")


# What the Jittor engine's LoRA loop (jstyleid/engines/jittor/lora.py) cannot train: refused here,
# before any job runs, not inside train_lora after the class images were generated.
JITTOR_REFUSED_LEVERS = dict(
    lora_text_encoder=("a text-encoder LoRA", lambda value: bool(value)),
    class_prompt=("prior preservation", lambda value: bool(value)),
    gradient_accumulation_steps=("gradient accumulation", lambda value: value != 1),
)


def check_engine_levers(config: dict, styles) -> None:
    """Refuse the training levers the configured engine cannot train, naming the key and the style."""
    if config["engine"] != "jittor":
        return
    for style in styles:
        if setting(config, style, "content_dir"):
            continue  # the style brings its content: no LoRA is trained
        for key, (lever, is_set) in JITTOR_REFUSED_LEVERS.items():
            if is_set(setting(config, style, key)):
                raise InputError(f"config {key} (style {style})",
                                 f"the Jittor engine cannot train {lever}; use engine: torch")


# lora_scope: shared (rules/train_lora.smk, train_lora_shared): one LoRA on every generating style's images.
# SHARED names its folder results/shared/ and stands for it where a style is asked: it has no override,
# so its settings are the global ones. The keys that only shape the training cannot differ by style.
SHARED = "shared"
SHARED_TRAINING_KEYS = (
    "lora_steps", "lora_rank", "lora_lr", "lora_batch_size", "lora_checkpoint_every", "lr_scheduler",
    "lr_warmup_steps", "gradient_accumulation_steps", "class_prompt", "num_class_images", "prior_loss_weight",
    "lora_text_encoder", "lora_text_encoder_rank", "lora_text_encoder_lr", "validation_every",
)
SHARED_LORA_KEYS = ("lora_scope", "lora_steps_shared", "lora_rank_shared")
SHARED_INSTANCE_PROMPT = "style_{style}"  # train-lora gives each folder of a shared LoRA style_<folder name>


def check_selection(config: dict, styles) -> None:
    """Refuse, before any job, a per-prompt choice the submission could not make."""
    for style in styles:
        if setting(config, style, "select_per") != "prompt":
            continue
        where = f"config styles {style}" if "select_per" in config["styles"].get(style, {}) else "config"
        metric = setting(config, style, "select")
        if metric in ("none", "fid"):
            raise InputError(f"{where} select_per", f"prompt needs a per-image score in select (style {style} has "
                             f"{metric}; fid compares sets): final, hist, dino, lpips, clip_iqa or clip_r")


def check_lora_scope(config: dict, styles) -> None:
    """With lora_scope shared, refuse (one line) what one shared training cannot honour."""
    if config["lora_scope"] != SHARED:
        return
    if SHARED in styles:
        raise InputError(f"style folder {SHARED}",
                         "its results/shared/ is the shared LoRA's; rename it or use lora_scope: style")
    sharing = [style for style in styles if not setting(config, style, "content_dir")]  # the others train no LoRA
    for style in sharing:
        overrides = config["styles"].get(style, {})
        for key in SHARED_TRAINING_KEYS:
            if key in overrides:
                raise InputError(f"config styles {style} {key}", "lora_scope: shared trains one LoRA for all styles; "
                                 "set it globally (or lora_steps_shared, lora_rank_shared)")
        if setting(config, style, "instance_prompt") != SHARED_INSTANCE_PROMPT:
            where = f"config styles {style}" if "instance_prompt" in overrides else "config"
            raise InputError(f"{where} instance_prompt",
                             f"a shared LoRA gives each style its own token {SHARED_INSTANCE_PROMPT}; leave it at that")
    if config["validation_every"] and not any(setting(config, style, "validation_prompts") for style in sharing):
        raise InputError("config validation_prompts", "validation_every is set but no style has validation_prompts")


def setting(config: dict, style: str, key: str):
    """A setting for one style: its override under `styles:` if any, else the global value."""
    return config["styles"].get(style, {}).get(key, config[key])


def builtin_preset(config: dict) -> str | None:
    """The preset of `model: builtin:<preset>`; None for a folder or a hub id."""
    return config["model"].removeprefix(BUILTIN_PREFIX) if config["model"].startswith(BUILTIN_PREFIX) else None


def files_in(folder, names, suffix) -> list[str]:
    """folder/name+suffix for each name."""
    return [f"{folder}/{name}{suffix}" for name in names]


def find_image(folder: Path, name: str) -> Path:
    found = [folder / f"{name}{s}" for s in sorted(IMAGE_SUFFIXES) if (folder / f"{name}{s}").is_file()]
    return found[0] if found else folder / f"{name}.png"  # a missing file Snakemake will name


def class_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Plan:
    """One workflow run: the config, the usable styles and the rules whose paths the functions name."""

    config: dict
    styles: list[str]
    rules: Any
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def styles_dir(self) -> Path:
        return Path(self.config["styles_dir"])

    @property
    def model(self) -> str:
        """The model every stage loads: a preset built by make_model, a local diffusers folder or a hub id."""
        preset = builtin_preset(self.config)
        return self.rules.make_model.output[0].format(preset=preset) if preset else self.config["model"]

    def model_input(self) -> list[str]:
        """The model as a job input when it is a folder, so the jobs wait for (and rerun after) its
        build; a hub id in the local cache is not a file Snakemake could track."""
        return [self.model] if builtin_preset(self.config) or Path(self.model).exists() else []

    def setting(self, style, key):
        return setting(self.config, style, key)

    def prompts(self, style) -> dict[str, str]:
        """{file name: prompt as written} of the style's prompt.json."""
        return {safe_filename(p): p for p in read_prompts(self.styles_dir / style / "prompt.json").values()}

    def style_images(self, style) -> list[Path]:
        return style_images(self.styles_dir / style)

    def style_refs(self, style) -> list[Path]:
        """The style reference images: all, a named list, or N picked by a seeded (repeatable) draw."""
        images = self.style_images(style)
        choice = self.setting(style, "style_refs")
        if choice == "all":
            return images
        if isinstance(choice, int):
            draw = random.Random(f"{self.setting(style, 'seed')}/{style}")
            return sorted(draw.sample(images, min(choice, len(images))))
        by_name = {p.name: p for p in images}
        unknown = [name for name in choice if name not in by_name]
        if unknown:
            raise InputError(f"style_refs of style {style}", f"no such images in {self.styles_dir / style}/images: {unknown}")
        return [by_name[name] for name in choice]

    def user_content(self, style) -> Path | None:
        """The user's content folder for the style, or None when the content is generated."""
        folder = self.setting(style, "content_dir")
        return Path(folder.format(style=style)) if folder else None

    def generated_folder(self, style) -> str:
        return self.rules.generate.output[0].format(style=style)

    def content_images(self, style) -> list:
        """One content image per prompt: generated into results/, or found in the user's folder."""
        folder = self.user_content(style)
        if folder is None:
            return files_in(self.generated_folder(style), self.prompts(style), ".png")
        return [find_image(folder, name) for name in self.prompts(style)]

    def content_input(self, style) -> list:
        """What invert_content waits for: the generate job's folder, or the user's images."""
        return self.content_images(style) if self.user_content(style) else [self.generated_folder(style)]

    def styleid_folder(self, style) -> str:
        return self.rules.inject.output.styleid.format(style=style)

    def sweep_folder(self, style) -> str:
        """The inject job's folder of the style's sweep settings, one subfolder each (empty without `sweep:`)."""
        return self.rules.inject.output.sweep.format(style=style)

    # -- sweeps and layers (rules/inject.smk: one job per style runs its setting and its sweep; rules/invert.smk) --

    def sweep_points(self, style) -> dict[str, dict]:
        """{label: dict(params, shown)} of the style's `sweep:`, one per combination of its lists (an
        empty list means the style's own setting). The label names the folder results/XX/sweep/<label>:
        g{gamma}_t{T}, then the layers and the reference mode when those are swept. `shown`: what the
        report's column heading says."""
        sweep = self.setting(style, "sweep")
        swept = [key for key in SWEEP_KEYS if sweep.get(key)]
        if not swept:
            return {}
        combinations = itertools.product(*(sweep.get(key) or [self.setting(style, key)] for key in SWEEP_KEYS))
        return dict(self._injection_point(dict(zip(SWEEP_KEYS, values)), swept) for values in combinations)

    @staticmethod
    def _injection_point(params, swept) -> tuple[str, dict]:
        shown = dict(gamma=params["gamma"], temperature=params["temperature"])
        if "layers" in swept:
            shown["layers"] = layers_label(params["layers"])
        if "style_refs_mode" in swept:
            shown["style_refs_mode"] = params["style_refs_mode"]
        label = "_".join(
            [f"g{params['gamma']}_t{params['temperature']}"]
            + [str(shown[key]) for key in ("layers", "style_refs_mode") if key in shown]
        )
        return label, dict(params=params, shown=shown)

    def injection_points(self, style) -> dict[str, dict]:
        """What a variant's chain injects: the sweep's points and the style's own setting (once)."""
        swept = [key for key in SWEEP_KEYS if self.setting(style, "sweep").get(key)]
        label, own = self._injection_point({key: self.setting(style, key) for key in SWEEP_KEYS}, swept)
        return {label: own, **self.sweep_points(style)}

    def sweep_settings(self, style) -> list[dict]:
        """The candidates of the style's sweep, each as dict(label, params, outputs, shown, content_caches):
        the injection points on the style's own caches (content_caches None), then every injection point
        of each generation variant on the variant's caches, labelled <variant>_<injection label>."""
        own = [dict(label=label, outputs=f"{self.sweep_folder(style)}/{label}", content_caches=None, **point)
               for label, point in self.sweep_points(style).items()]
        variants = [
            dict(label=f"{variant}_{label}", outputs=f"{self.sweep_folder(style)}/{variant}_{label}",
                 content_caches=self.variant_caches(style, variant), params=point["params"],
                 shown=dict(point["shown"], variant=variant))
            for variant in self.variants(style)
            for label, point in self.injection_points(style).items()
        ]
        return own + variants

    # -- generation variants (rules/generate.smk, rules/invert.smk: generate_variant, invert_content_variant) --

    def variants(self, style) -> dict[str, dict]:
        """{variant: {lora_steps, gen_strength, guidance}} of the combinations of the style's swept generation
        keys (its own values for the others) other than its own one, which is the plain chain. The variant
        names the swept keys: lora250_s0.6_cfg5."""
        sweep = self.setting(style, "sweep")
        swept = [key for key in VARIANT_KEYS if sweep.get(key)]
        own = self.generation(style)
        variants = {}
        for values in itertools.product(*(sweep[key] for key in swept)):
            params = dict(own, **dict(zip(swept, values)))
            if params != own:
                variants["_".join(f"{VARIANT_KEYS[key]}{params[key]}" for key in swept)] = params
        return variants

    def generation(self, style, variant=None) -> dict:
        """The generation values of a variant, or the style's own (variant None)."""
        if variant is not None:
            return self.variants(style)[variant]
        return {key: self.setting(style, key) for key in VARIANT_KEYS} | {"lora_steps": self.own_lora_steps(style)}

    def check_sweeps(self) -> None:
        """Refuse, in one line naming the style and key, a generation sweep that cannot run."""
        for style in self.styles:
            sweep = self.setting(style, "sweep")
            swept = [key for key in VARIANT_KEYS if sweep.get(key)]
            if swept and self.user_content(style):
                raise InputError(f"config sweep.{swept[0]} (style {style})",
                                 "the style brings its content (content_dir): nothing is generated to sweep")
            if sweep.get("gen_strength") and self.setting(style, "gen_init") == "noise":
                raise InputError(f"config sweep.gen_strength (style {style})",
                                 "gen_init is noise, which has no strength; set gen_init or drop the list")

    def variant_content_folder(self, style, variant) -> str:
        return self.rules.generate_variant.output[0].format(style=style, variant=variant)

    def variant_cache_folder(self, style, variant) -> str:
        return self.rules.invert_content_variant.output[0].format(style=style, variant=variant)

    def variant_caches(self, style, variant) -> list[str]:
        return files_in(self.variant_cache_folder(style, variant), self.prompts(style), ".h5")

    def variant_cache_folders(self, style) -> list[str]:
        """What the style's inject job waits for besides its own caches: every variant's content caches."""
        return [self.variant_cache_folder(style, variant) for variant in self.variants(style)]

    def own_lora_steps(self, style) -> int:
        """The step of the LoRA the style's own chain generates with: its lora_steps, or with a shared LoRA
        the shared training's (lora_steps_shared); a lora_steps sweep lists steps of the same training."""
        return self.shared_lora_setting("lora_steps") if self.shares_lora() else self.setting(style, "lora_steps")

    def _trained_by(self, style) -> list[str]:
        """The styles whose chains one training serves: the style, or with a shared LoRA every sharing style."""
        return self.sharing_styles() if self.shares_lora() else [style]

    def trained_steps(self, style) -> int:
        """The one training (the style's, or the shared one) runs to the largest step a chain uses."""
        return max(step for served in self._trained_by(style)
                   for step in [self.own_lora_steps(served), *self.setting(served, "sweep").get("lora_steps", [])])

    def snapshot_steps(self, style) -> list[int]:
        """train-lora's --snapshot-steps: every step a chain generates with, the last too (so that a
        larger value later finds all of them in the checkpoint and resumes); none without a lora_steps sweep."""
        served = self._trained_by(style)
        swept = {step for s in served for step in self.setting(s, "sweep").get("lora_steps", [])}
        if not swept:
            return []
        return sorted({self.trained_steps(style), *swept, *(self.own_lora_steps(s) for s in served)})

    def generation_lora(self, style, weights, variant=None) -> str:
        """The LoRA a chain generates with: the training's weights at its last step, else the snapshot of
        the chain's step (also for the style's own chain when the sweep trains further than its lora_steps)."""
        steps = self.generation(style, variant)["lora_steps"]
        return str(weights) if steps == self.trained_steps(style) else str(snapshot_file(Path(weights).parent, steps))

    def recorded_layers(self, style) -> tuple[str, ...]:
        """The layers the style's caches record: every layer its injections use (its own and its
        sweep's); the spec's six when those cover them (the caches record all six anyway)."""
        used = set(resolve_layers(self.setting(style, "layers")))
        for point in self.sweep_points(style).values():
            used |= set(resolve_layers(point["params"]["layers"]))
        return LAYER_PRESETS["spec6"] if used <= set(LAYER_PRESETS["spec6"]) else tuple(sorted(used))

    def recorded_layers_flag(self, style) -> str:
        """invert's --layers; none for the spec's six (today's command)."""
        layers = self.recorded_layers(style)
        return "" if layers == LAYER_PRESETS["spec6"] else "--layers " + " ".join(layers)

    # -- the generate rule's levers (rules/generate.smk): off by default, then no input and no option --

    def init_images(self, style) -> list:
        """The img2img init images: none (gen_init: noise), the style's images (style_mean: their
        per-pixel mean starts every prompt), or one per prompt from a folder ({style} = the style)."""
        init = self.setting(style, "gen_init")
        if init == "noise":
            return []
        if init == "style_mean":
            return self.style_images(style)
        return [find_image(Path(init.format(style=style)), name) for name in self.prompts(style)]

    def init_args(self, style, variant=None) -> dict:
        images = self.init_images(style)
        if not images:
            return {}
        option = "--init-mean" if self.setting(style, "gen_init") == "style_mean" else "--init-image"
        return {option: [str(p) for p in images], "--strength": self.generation(style, variant)["gen_strength"]}

    def candidate_references(self, style) -> list:
        """The images candidates are scored against: all of the style's, as the challenge compares."""
        return self.style_images(style) if self.setting(style, "gen_candidates") > 1 else []

    def candidates_args(self, style) -> dict:
        count, metric = self.setting(style, "gen_candidates"), self.setting(style, "gen_candidates_metric")
        if count == 1:
            return {}
        args = {"--candidates": count, "--candidates-metric": metric,
                "--references": [str(p) for p in self.candidate_references(style)]}
        if metric in CANDIDATE_WEIGHTS:
            args["--metric-weights"] = self.config["evaluation"][CANDIDATE_WEIGHTS[metric]]
        return args

    def candidates_entry(self, style) -> dict:
        """The report manifest's pointer to the style's candidate scores; nothing with one candidate."""
        if self.setting(style, "gen_candidates") == 1 or self.user_content(style):
            return {}
        return dict(candidates=f"{self.generated_folder(style)}/candidates/scores.json")

    # -- what the report says of each candidate: its kind, and the LoRA snapshot it generated with --

    def candidate_kind(self, style, variant=None) -> str:
        """injection: a setting on the style's own content; snapshot: content from another LoRA step;
        generation: another gen_strength or guidance; snapshot+generation: both."""
        if variant is None:
            return "injection"
        own, params = self.generation(style), self.generation(style, variant)
        return "+".join((["snapshot"] if params["lora_steps"] != own["lora_steps"] else [])
                        + (["generation"] if any(params[k] != own[k] for k in VARIANT_KEYS if k != "lora_steps") else []))

    def report_sweep(self, style) -> list[dict]:
        """The report manifest's sweep entries; with generation variants, each also names its kind."""
        entries = [dict(p["shown"], outputs=p["outputs"]) for p in self.sweep_settings(style)]
        if self.variants(style):  # without them: the manifest as before
            for entry in entries:
                entry["kind"] = self.candidate_kind(style, entry.get("variant"))
        return entries

    def snapshots_entry(self, style) -> dict:
        """The report manifest's LoRA snapshots of the style, per step the settings generated with it;
        nothing without a lora_steps sweep."""
        if not self.setting(style, "sweep").get("lora_steps"):
            return {}
        chains = {self.own_lora_steps(style): ["styleid"]}
        for point in self.sweep_settings(style):
            step = self.generation(style, point["shown"].get("variant"))["lora_steps"]
            chains.setdefault(step, []).append(point["label"])
        return dict(snapshots=[dict(step=step, settings=labels) for step, labels in sorted(chains.items())])

    # -- LoRA training levers (rules/train_lora.smk) --

    def class_images_settings(self, style) -> dict | None:
        """What the style's class images (prior preservation) depend on; None when it is off."""
        prompt = self.setting(style, "class_prompt")
        if not prompt:
            return None
        return dict(
            model=self.model,
            engine=self.config["engine"],
            dtype=self.config["dtype"],
            prompt=prompt,
            count=self.setting(style, "num_class_images"),
            resolution=self.setting(style, "resolution"),
            seed=self.setting(style, "seed"),
            steps=self.config["gen_steps"],
            guidance=self.config["guidance"],
        )

    def class_image_sets(self) -> dict[str, dict]:
        """{class key: settings}: one class-image set per distinct settings, shared by the styles asking for it."""
        styles = self.styles + [SHARED] if self.shares_lora() else self.styles
        return {class_key(s): s for s in map(self.class_images_settings, styles) if s}

    def class_images_dir(self, style) -> str | None:
        settings = self.class_images_settings(style)
        return f"results/class_images/{class_key(settings)}" if settings else None

    def train_lora_levers(self, style) -> str:
        """train-lora options of the training levers; empty at their defaults (the command stays as before).
        `style` SHARED: the shared LoRA's, from the global settings."""
        get = lambda key: self.setting(style, key)  # noqa: E731
        options = []
        if get("lr_scheduler") != "constant" or get("lr_warmup_steps"):
            options += ["--lr-scheduler", get("lr_scheduler"), "--lr-warmup-steps", get("lr_warmup_steps")]
        if get("gradient_accumulation_steps") != 1:
            options += ["--gradient-accumulation-steps", get("gradient_accumulation_steps")]
        if self.class_images_dir(style):
            options += [
                "--class-dir",
                self.class_images_dir(style),
                "--class-prompt",
                get("class_prompt"),
                "--prior-loss-weight",
                get("prior_loss_weight"),
            ]
        if get("lora_text_encoder"):
            options += [
                "--text-encoder-lora",
                "--text-encoder-rank",
                get("lora_text_encoder_rank"),
                "--text-encoder-lr",
                get("lora_text_encoder_lr"),
            ]
        if get("validation_every"):
            if style != SHARED and not self.validation_prompts(style):
                raise InputError(f"style {style}", "validation_every is set but validation_prompts is empty")
            options += [
                "--validation-every",
                get("validation_every"),
                # the shared LoRA's prompts (every style's) travel in its manifest
                *(["--validation-prompt", *self.validation_prompts(style)] if style != SHARED else []),
                "--validation-ddim-steps",
                get("gen_steps"),
                "--validation-guidance",
                get("guidance"),
            ]
        if self.snapshot_steps(style):  # a lora_steps sweep: one training, the LoRA kept at each step
            options += ["--snapshot-steps", *self.snapshot_steps(style)]
        return " ".join(shlex.quote(str(option)) for option in options)

    def validation_prompts(self, style) -> list[str]:
        return [p.replace("{style}", style) for p in self.setting(style, "validation_prompts")]

    def loss_curve(self, style) -> str | None:
        """The LoRA loss curve PNG of the style; None when its content is the user's (no LoRA)."""
        return None if self.user_content(style) else self.lora_rule().output.loss[1].format(style=style)

    def validation_strips(self, style) -> str | None:
        """The LoRA folder whose validation/ strips the report shows; None when validation is off."""
        if self.user_content(style) or not self.setting(style, "validation_every"):
            return None
        return str(Path(self.lora_weights(style)).parent)

    def own_validation_prompts(self, style) -> dict:
        """The report manifest's cut of a shared LoRA's strips to the style's own prompts (a page per style
        would otherwise show every style's); nothing with a LoRA per style."""
        if not (self.shares_lora() and self.validation_strips(style)):
            return {}
        return dict(validation_prompts=self.validation_prompts(style))

    # -- which LoRA a style's generate loads: its own, or the one shared by all (lora_scope) --

    def shares_lora(self) -> bool:
        return self.config["lora_scope"] == SHARED

    def lora_rule(self):
        """The rule that trains the styles' LoRAs."""
        return self.rules.train_lora_shared if self.shares_lora() else self.rules.train_lora

    def lora_weights(self, style) -> str:
        """The LoRA file the style's generate loads."""
        return self.lora_rule().output.weights.format(style=style)

    def sharing_styles(self) -> list[str]:
        """The styles of the shared LoRA: those that generate their content."""
        return [style for style in self.styles if not self.user_content(style)]

    def shared_lora_images(self) -> list[Path]:
        return [image for style in self.sharing_styles() for image in self.style_images(style)]

    def shared_lora_setting(self, key) -> int:
        """lora_steps_shared / lora_rank_shared; unset: lora_steps / lora_rank x the number of styles, so each
        style gets about the steps it would alone and its share of the rank."""
        chosen = self.config[f"{key}_shared"]
        return chosen if chosen is not None else self.config[key] * len(self.sharing_styles())

    def shared_lora_args(self) -> dict:
        """train-lora's style folders of the shared LoRA and, with validation, every style's prompts (each
        with its own token; a prompt two styles share is drawn once)."""
        args = {"--style-dir": [str(self.styles_dir / style) for style in self.sharing_styles()]}
        if self.config["validation_every"]:
            args["--validation-prompt"] = list(dict.fromkeys(p for style in self.sharing_styles()
                                                             for p in self.validation_prompts(style)))
        return args

    # -- evaluation and selection (rules/evaluate.smk, rules/report.smk) --

    def selects(self, style) -> bool:
        """Whether the style submits the setting with the best score (`select` other than none)."""
        return self.setting(style, "select") != "none"

    def selecting(self) -> bool:
        return any(self.selects(style) for style in self.styles)

    def evaluating(self) -> bool:
        return self.config["evaluation"]["enabled"] or self.selecting()

    def clip_r_words(self) -> str:
        """evaluation.clip_r_words for --clip-r-words: "styles" is styles_dir (its prompts are the list)."""
        words = self.config["evaluation"]["clip_r_words"]
        return str(self.styles_dir) if words == "styles" else words

    def all_sweep_outputs(self) -> list[str]:
        """The sweep folders of the styles with a sweep (what evaluate, report and selection wait for)."""
        return [self.sweep_folder(style) for style in self.styles if self.sweep_settings(style)]

    def eval_settings(self, style) -> list[dict]:
        """[{label, outputs, images}] of the style's picture sets: its content images, the StyleID
        outputs and one per sweep setting (labelled by its folder name), whatever keys the sweep varies."""
        names = self.prompts(style)
        styleid = self.styleid_folder(style)
        contents = self.content_images(style)
        sets = [
            dict(label="content", outputs=str(Path(contents[0]).parent), images=[str(p) for p in contents]),
            dict(label="styleid", outputs=styleid, images=files_in(styleid, names, ".png")),
        ]
        for point in self.sweep_settings(style):
            folder = point["outputs"]
            sets.append(dict(label=point["label"], outputs=folder, images=files_in(folder, names, ".png")))
        return sets

    def eval_manifest(self) -> dict:
        """Every style's references (all its images, as the challenge compares) and picture sets."""
        styles = [
            dict(name=style, refs=[str(p) for p in self.style_images(style)], settings=self.eval_settings(style))
            for style in self.styles
        ]
        return dict(styles=styles)

    def selection_inputs(self) -> list[str]:
        """What the submission waits for when some style selects its setting: the scores and every sweep."""
        return [self.rules.evaluate.output[0]] + self.all_sweep_outputs() if self.selecting() else []

    def selection_args(self) -> dict:
        """--scores/--select of the submission; none (the plain submission) when no style selects."""
        if not self.selecting():
            return {}
        args = {"--scores": self.rules.evaluate.output[0],
                "--select": [self.setting(style, "select") for style in self.styles]}
        per = [self.setting(style, "select_per") for style in self.styles]
        return {**args, "--select-per": per} if "prompt" in per else args  # off: the command as before

    def report_evaluation(self) -> dict | None:
        """The report's scores section: scores.json and each style's `select`; None without evaluation."""
        if not self.evaluating():
            return None
        # the report shows null as "the default output"
        chosen = {style: self.setting(style, "select") if self.selects(style) else None for style in self.styles}
        per_prompt = [style for style in self.styles if self.selects(style)
                      and self.setting(style, "select_per") == "prompt"]
        return dict(scores=self.rules.evaluate.output[0], select=chosen,
                    **({"per_prompt": per_prompt} if per_prompt else {}))  # off: the manifest as before

    # -- the report (rules/report.smk) --

    def shown_config(self) -> dict:
        """The config the report prints: every key that can change a picture, per-style overrides too."""
        # lora_scope style: the shared LoRA's keys change no picture, and the report stays as before them
        unshown = UNSHOWN_KEYS + (() if self.shares_lora() else SHARED_LORA_KEYS)
        if all(self.setting(style, "select_per") == "style" for style in self.styles):
            unshown += ("select_per",)  # its default: the report stays as before the key

        def keep(settings):
            kept = {key: value for key, value in settings.items() if key not in unshown}
            if "sweep" in kept:  # unswept generation keys likewise
                kept["sweep"] = {key: v for key, v in kept["sweep"].items() if v or key not in VARIANT_KEYS}
            return kept

        overrides = {style: keep(settings) for style, settings in self.config["styles"].items()}
        return dict(keep(self.config), styles={style: kept for style, kept in overrides.items() if kept})

    def benchmarks(self) -> list[str]:
        """The benchmark files of every job the report follows, in pipeline order."""
        rules = self.rules
        generated = [style for style in self.styles if not self.user_content(style)]
        preset = builtin_preset(self.config)
        files = [rules.make_model.benchmark.format(preset=preset)] if preset else []
        if self.shares_lora():
            files += [rules.train_lora_shared.benchmark] if generated else []
        else:
            files += [rules.train_lora.benchmark.format(style=style) for style in generated]
        files += [rules.generate.benchmark.format(style=style) for style in generated]
        for stage in (rules.invert_style, rules.invert_content, rules.inject):
            files += [stage.benchmark.format(style=style) for style in self.styles]
        for stage in (rules.generate_variant, rules.invert_content_variant):
            files += [stage.benchmark.format(style=style, variant=variant)
                      for style in self.styles for variant in self.variants(style)]
        return files + [rules.submission.benchmark] + ([rules.evaluate.benchmark] if self.evaluating() else [])

    def store_logs(self) -> list[dict]:
        """The logs of the jobs that use the per-image store: the report counts what each reused."""
        stages = ("generate", "invert_style", "invert_content", "inject")
        return [
            dict(style=style, stage=stage, log=getattr(self.rules, stage).log[0].format(style=style))
            for style in self.styles
            for stage in stages
            if stage != "generate" or not self.user_content(style)
        ]

    def report_manifest(self) -> dict:
        """What the report shows: per style (contents and outputs paired by prompt file name), the
        benchmark files, the config that made the pictures and the styles refused at start."""
        styles = [
            dict(
                name=style,
                prompts=str(self.styles_dir / style / "prompt.json"),
                refs=[str(p) for p in self.style_refs(style)],
                contents=[str(p) for p in self.content_images(style)],
                outputs=self.styleid_folder(style),
                loss=self.loss_curve(style),
                validation=self.validation_strips(style),
                **self.own_validation_prompts(style),
                sweep=self.report_sweep(style),
                **self.candidates_entry(style),
                **self.snapshots_entry(style),
            )
            for style in self.styles
        ]
        refused = [dict(style=style, stage="check_inputs", error=line) for style, line in self.refused.items()]
        return dict(
            styles=styles,
            benchmarks=self.benchmarks(),
            config=self.shown_config(),
            evaluation=self.report_evaluation(),
            **({"failures": refused} if refused else {}),
            **({"store_logs": self.store_logs()} if self.config["store"] else {}),
        )

    # -- the manifests: each job's lists in a file (rules/manifests.smk), as no command line may grow with the data --

    def manifest(self, stage: str, name: str) -> dict:
        """What the manifest file of job `name` (a style or "all") of `stage` holds: report and evaluate
        read it as --manifest, inject_settings is inject's --settings, the others are --args-file ({"--option": values})."""
        if stage in ("report", "evaluate", "submission"):
            return {"report": self.report_manifest, "evaluate": self.eval_manifest,
                    "submission": self.submission_args}[stage]()
        style, _, variant = name.partition("/")  # a variant's job: <style>/<variant>
        if stage == "generate":
            return self.generate_args(style, variant or None)
        if stage == "train_lora_shared":
            return self.shared_lora_args()
        if stage == "invert_content" and variant:
            return self.variant_invert_args(style, variant)
        if stage in ("invert_style", "invert_content"):
            return self.invert_args(stage.removeprefix("invert_"), name)
        if stage == "inject":
            return self.inject_args(name)
        if stage == "inject_settings":
            return self.inject_settings(name)
        raise ValueError(f"no manifest for stage {stage!r}")

    def generate_args(self, style, variant=None) -> dict:
        """generate's prompts, one output each, and the levers' images (of the style or one of its variants)."""
        names = self.prompts(style)
        folder = self.variant_content_folder(style, variant) if variant else self.generated_folder(style)
        return {"--prompt": list(names.values()), "--out": files_in(folder, names, ".png"),
                **self.init_args(style, variant), **self.candidates_args(style)}

    def variant_invert_args(self, style, variant) -> dict:
        """invert's content images of a variant and their caches."""
        images = files_in(self.variant_content_folder(style, variant), self.prompts(style), ".png")
        return {"--images": images, "--out": self.variant_caches(style, variant)}

    def invert_args(self, role, style) -> dict:
        """invert's images and caches: the chosen style references, or one content image per prompt."""
        if role == "style":
            images, names = self.style_refs(style), [p.stem for p in self.style_refs(style)]
        else:
            images, names = self.content_images(style), self.prompts(style)
        folder = getattr(self.rules, f"invert_{role}").output[0].format(style=style)
        return {"--images": [str(p) for p in images], "--out": files_in(folder, names, ".h5")}

    def inject_args(self, style) -> dict:
        """inject's caches of the style."""
        contents = self.rules.invert_content.output[0].format(style=style)
        refs = self.rules.invert_style.output[0].format(style=style)
        return {"--content-caches": files_in(contents, self.prompts(style), ".h5"),
                "--style-caches": files_in(refs, [p.stem for p in self.style_refs(style)], ".h5")}

    def inject_settings(self, style) -> list[dict]:
        """inject's --settings (jstyleid/pipelines/inject.py, read_settings): the style's own setting into
        its StyleID folder, then each sweep setting into its folder; one output per prompt each."""
        own = {key: self.setting(style, key) for key in SWEEP_KEYS}
        runs = [(own, self.styleid_folder(style), None)] + [(p["params"], p["outputs"], p["content_caches"])
                                                           for p in self.sweep_settings(style)]
        return [dict(gamma=params["gamma"], temperature=params["temperature"], adain=self.setting(style, "adain"),
                     layers=list(resolve_layers(params["layers"])), refs_mode=params["style_refs_mode"],
                     out=files_in(folder, self.prompts(style), ".png"),
                     **({"content_caches": caches} if caches else {}))
                for params, folder, caches in runs]

    def submission_args(self) -> dict:
        """The submission's prompt files and image folders, one per style, and the selection."""
        return {"--prompts": [str(self.styles_dir / style / "prompt.json") for style in self.styles],
                "--image-dirs": [self.styleid_folder(style) for style in self.styles], **self.selection_args()}

    # -- the disk check before any job runs --

    def planned_caches(self):
        """(role, steps, resolution, recorded layers, missing cache files) of every style: what the inversions will write."""
        for style in self.styles:
            steps, resolution = self.setting(style, "inversion_steps"), self.setting(style, "resolution")
            layers = self.recorded_layers(style)
            for role, names in (("content", self.prompts(style)), ("style", [p.stem for p in self.style_refs(style)])):
                folder = f"results/{style}/cache/{role}"
                yield role, steps, resolution, layers, [f for f in files_in(folder, names, ".h5") if not Path(f).exists()]
            for variant in self.variants(style):  # the rules' paths: this runs before the rule files are read
                files = files_in(f"results/{style}/variants/{variant}/cache/content", self.prompts(style), ".h5")
                yield "content", steps, resolution, layers, [f for f in files if not Path(f).exists()]
