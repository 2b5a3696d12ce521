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


def generate_args(style):
    """generate's lists: the prompts, one output each, and the levers' images (rules/manifests.smk)."""
    names = prompts(style)
    folder = expand(rules.generate.output[0], style=style)[0]
    return {
        "--prompt": list(names.values()),
        "--out": files_in(folder, names, ".png"),
        **init_args(style),
        **candidates_args(style),
    }


def init_args(style):
    images = init_images(style)
    if not images:
        return {}
    option = "--init-mean" if setting(style, "gen_init") == "style_mean" else "--init-image"
    return {option: [str(p) for p in images], "--strength": setting(style, "gen_strength")}


CANDIDATE_WEIGHTS = dict(dino="dino", clip_r="clip")  # the `evaluation:` key naming each metric's weights


def candidate_references(style):
    """The images candidates are scored against: all of the style's, as the challenge compares."""
    return style_images(STYLES_DIR / style) if setting(style, "gen_candidates") > 1 else []


def candidates_args(style):
    count, metric = setting(style, "gen_candidates"), setting(style, "gen_candidates_metric")
    if count == 1:
        return {}
    args = {
        "--candidates": count,
        "--candidates-metric": metric,
        "--references": [str(p) for p in candidate_references(style)],
    }
    if metric in CANDIDATE_WEIGHTS:
        args["--metric-weights"] = config["evaluation"][CANDIDATE_WEIGHTS[metric]]
    return args


def candidates_entry(style):
    """The report manifest's pointer to the style's candidate scores; nothing with one candidate."""
    if setting(style, "gen_candidates") == 1 or user_content(style):
        return {}
    return dict(candidates=f"{expand(rules.generate.output[0], style=style)[0]}/candidates/scores.json")
