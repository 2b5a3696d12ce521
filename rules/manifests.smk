"""The lists a job needs (its images, prompts, outputs, styles, settings) as a file, so that no command
line grows with the data: Linux refuses any one argument over 128 KiB. The stages read
`--args-file FILE` ({"--option": [values]}, jstyleid/cli.py) or, for report and evaluate, `--manifest FILE`."""


def manifest(stage, name="all"):
    """The manifest file of one job, written by the rule below."""
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


# stage: the lists of its job `name` (a style, style/label, or "all"); called when the rule runs, after every rules/*.smk is read.
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


rule manifest:
    """results/manifests/<stage>/<job>.json from a params function (Snakemake's params trigger
    rewrites it when the lists change, and its new time reruns the job that reads it)."""
    input:
        workflow.source_path("manifest.j2"),
    output:
        "results/manifests/{stage}/{name}.json",
    wildcard_constraints:
        stage="|".join(MANIFESTS),
        name=".+",
    resources:
        **LIGHT_JOB,
    params:
        text=lambda w: json.dumps(MANIFESTS[w.stage](w.name), ensure_ascii=False),
    template_engine:
        "jinja2"
