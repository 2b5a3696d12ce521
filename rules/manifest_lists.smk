"""What each job's manifest file holds, written by rules/manifests.smk. The lists of images, prompts,
outputs, styles and settings that would otherwise make its command line grow with the data."""


def manifest(stage, name="all"):
    """The manifest file of one job (rules/manifests.smk writes it)."""
    return f"results/manifests/{stage}/{name}.json"


def invert_args(role, style):
    """invert's --image/--out: the chosen style references, or one content image per prompt."""
    images = style_refs(style) if role == "style" else content_images(style)
    names = [p.stem for p in style_refs(style)] if role == "style" else prompts(style)
    folder = expand(getattr(rules, f"invert_{role}").output[0], style=style)[0]
    return {"--image": [str(p) for p in images], "--out": files_in(folder, names, ".h5")}


def inject_args(style, folder):
    """inject's --content/--style/--out: the style's caches, one output per prompt in `folder`."""
    contents = expand(rules.invert_content.output[0], style=style)[0]
    refs = expand(rules.invert_style.output[0], style=style)[0]
    return {
        "--content": files_in(contents, prompts(style), ".h5"),
        "--style": files_in(refs, [p.stem for p in style_refs(style)], ".h5"),
        "--out": files_in(folder, prompts(style), ".png"),
    }


def sweep_args(name):
    style, label = name.split("/", 1)
    return inject_args(style, expand(rules.inject_sweep.output[0], style=style, label=label)[0])


# stage: the lists of its job `name` (a style, style/label, or "all"); called when the rule runs,
# after every rules/*.smk is read.
MANIFESTS = {
    "report": lambda name: report_manifest(),
    "evaluate": lambda name: eval_manifest(),
    "submission": lambda name: submission_args(),
    "generate": lambda style: generate_args(style),
    "invert_style": lambda style: invert_args("style", style),
    "invert_content": lambda style: invert_args("content", style),
    "inject": lambda style: inject_args(style, expand(rules.inject.output[0], style=style)[0]),
    "inject_sweep": lambda name: sweep_args(name),
}
