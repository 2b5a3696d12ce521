rule generate:
    """One content image per prompt of the style, with the style's LoRA."""
    input:
        model=MODEL_INPUT,
        lora=rules.train_lora.output.weights,
        init=lambda w: init_images(w.style),
        references=lambda w: candidate_references(w.style),
    output:
        shown(
            directory("results/{style}/content"),
            "content",
            "2 content images",
            patterns=["{name,[^/]+}.png"],  # not the candidates/ subfolders
            labels={"style": "{style}", "image": "{name}"},
        ),
    log:
        "results/logs/generate/{style}.log",
    benchmark:
        "results/benchmarks/generate/{style}.tsv"
    threads: 1
    resources:
        **MODEL_JOB,
    params:
        model=model_param,
        engine=ENGINE,
        prompts=lambda w: list(prompts(w.style).values()),
        outs=lambda w, output: files_in(output[0], prompts(w.style), ".png"),
        template=lambda w: setting(w.style, "template").replace("{style}", w.style),
        steps=per_style("gen_steps"),
        guidance=per_style("guidance"),
        resolution=per_style("resolution"),
        seed=per_style("seed"),
        batch_size=config["batch_size"],
        init=lambda w: init_option(w.style),
        candidates=lambda w: candidates_option(w.style),
    shell:
        "jstyleid generate --model {params.model:q} --lora {input.lora:q} --prompt {params.prompts:q}"
        " --out {params.outs:q} --template {params.template:q} --steps {params.steps}"
        " --guidance {params.guidance} --resolution {params.resolution} --seed {params.seed}"
        " --batch-size {params.batch_size}{STORE} {params.init} {params.candidates} {params.engine} 2> {log:q}"


"""The generate rule's levers (issue 11): img2img starts (`gen_init`, `gen_strength`) and several
candidates per prompt kept by a score (`gen_candidates`, `gen_candidates_metric`). Each is off by
default and then adds no input and no option, so the generate command is today's."""


def init_images(style):
    """The img2img init images: none (gen_init: noise), the style's images (style_mean: their
    per-pixel mean starts every prompt), or one per prompt from a folder ({style} = the style)."""
    init = setting(style, "gen_init")
    if init == "noise":
        return []
    if init == "style_mean":
        return style_images(STYLES_DIR / style)
    return [_find_image(Path(init.format(style=style)), name) for name in prompts(style)]


def init_option(style):
    images = init_images(style)
    if not images:
        return ""
    option = "--init-mean" if setting(style, "gen_init") == "style_mean" else "--init-image"
    return f"{option} {shlex.join(map(str, images))} --strength {setting(style, 'gen_strength')}"


CANDIDATE_WEIGHTS = dict(dino="dino", clip_r="clip")  # the `evaluation:` key naming each metric's weights


def candidate_references(style):
    """The images candidates are scored against: all of the style's, as the challenge compares."""
    return style_images(STYLES_DIR / style) if setting(style, "gen_candidates") > 1 else []


def candidates_option(style):
    count, metric = setting(style, "gen_candidates"), setting(style, "gen_candidates_metric")
    if count == 1:
        return ""
    option = f"--candidates {count} --candidates-metric {metric} --references {shlex.join(map(str, candidate_references(style)))}"
    if metric in CANDIDATE_WEIGHTS:
        option += f" --metric-weights {shlex.quote(config['evaluation'][CANDIDATE_WEIGHTS[metric]])}"
    return option


def candidates_entry(style):
    """The report manifest's pointer to the style's candidate scores; nothing with one candidate."""
    if setting(style, "gen_candidates") == 1 or user_content(style):
        return {}
    return dict(candidates=f"{expand(rules.generate.output[0], style=style)[0]}/candidates/scores.json")
