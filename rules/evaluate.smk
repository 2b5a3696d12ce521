"""Scores of every picture set (content, StyleID, each sweep setting) as the challenge computes them,
and the per-style choice of the submitted setting (`select`)."""


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


def eval_manifest(wildcards):
    """Every style's references (all its images, as the challenge compares) and picture sets."""
    return json.dumps(
        dict(
            styles=[
                dict(name=style, refs=[str(p) for p in style_images(STYLES_DIR / style)], settings=eval_settings(style))
                for style in STYLES
            ]
        )
    )


def selection_inputs():
    """What the submission waits for when some style selects its setting: the scores and every sweep."""
    if not any(setting(style, "select") for style in STYLES):
        return []
    return [rules.evaluate.output[0]] + [p["outputs"] for style in STYLES for p in sweep_settings(style)]


def selection_option(wildcards):
    """--scores/--select of the submission; empty (the plain submission) when no style selects.
    A function of wildcards only, so that Snakemake's params trigger sees a change of `select`."""
    if not any(setting(style, "select") for style in STYLES):
        return ""
    metrics = " ".join(setting(style, "select") or "none" for style in STYLES)
    return f"--scores {rules.evaluate.output[0]} --select {metrics}"


def report_evaluation():
    """The report's scores section: scores.json and each style's `select`; None without evaluation."""
    if not evaluating():
        return None
    return dict(scores=rules.evaluate.output[0], select={style: setting(style, "select") for style in STYLES})


rule evaluate:
    """results/eval/scores.json: Hist, DINO, LPIPS, FID, CLIP-IQA, CLIP-R and the final score per
    style and setting (parts without local weights: unavailable)."""
    input:
        refs=[style_images(STYLES_DIR / style) for style in STYLES],
        contents=[content_input(style) for style in STYLES],
        outputs=expand(rules.inject.output[0], style=STYLES),
        sweeps=[p["outputs"] for style in STYLES for p in sweep_settings(style)],
    output:
        report("results/eval/scores.json", caption="../report/scores.rst", category="Scores"),
    log:
        "results/logs/evaluate.log",
    benchmark:
        "results/benchmarks/evaluate/all.tsv"
    threads: 1
    resources:
        **MODEL_JOB,
    params:
        manifest=eval_manifest,
        parts=config["evaluation"]["parts"],
        dino=config["evaluation"]["dino"],
        clip=config["evaluation"]["clip"],
        clip_iqa=config["evaluation"]["clip_iqa"],
        scaling=config["evaluation"]["clip_iqa_scaling"],
        torch_hub=config["evaluation"]["torch_hub"],
        words=config["evaluation"]["clip_r_words"],
        device=config["device"],
    shell:
        "jstyleid evaluate --manifest {params.manifest:q} --out {output:q} --parts {params.parts}"
        " --dino {params.dino:q} --clip {params.clip:q} --clip-iqa {params.clip_iqa:q}"
        " --clip-iqa-scaling {params.scaling} --torch-hub={params.torch_hub:q} --clip-r-words={params.words:q}"
        " --device {params.device} 2> {log:q}"
