rule submission:
    """The challenge layout: results/submission/XX/{prompt}.png, mapping.json beside them."""
    input:
        prompts=expand(STYLES_DIR / "{style}/prompt.json", style=STYLES),
        images=expand(rules.inject.output[0], style=STYLES),
    output:
        directory("results/submission"),
    log:
        "results/logs/submission.log",
    benchmark:
        "results/benchmarks/submission/all.tsv"
    threads: 1
    resources:
        **LIGHT_JOB,
    shell:
        "jstyleid submission --prompts {input.prompts:q} --images {input.images:q} --out {output:q} 2> {log:q}"


def loss_curve(style):
    return None if user_content(style) else expand(rules.train_lora.output.loss[1], style=style)[0]


def benchmarks():
    """The benchmark files of every job the report follows."""
    files = [rules.submission.benchmark]
    if BUILTIN:
        files += expand(rules.make_model.benchmark, preset=BUILTIN)
    for style in STYLES:
        stages = [rules.invert_style, rules.invert_content, rules.inject]
        if not user_content(style):
            stages += [rules.train_lora, rules.generate]
        files += [expand(r.benchmark, style=style)[0] for r in stages]
        files += [expand(rules.inject_sweep.benchmark, **w)[0] for w in sweeps(style)]
    return files


def report_manifest(w, input):
    """What the report shows, per style; it pairs contents and outputs by prompt file name."""
    styles = [
        dict(name=style, prompts=str(STYLES_DIR / style / "prompt.json"),
             refs=[str(p) for p in style_refs(style)], contents=[str(p) for p in content_images(style)],
             outputs=expand(rules.inject.output[0], style=style)[0], loss=loss_curve(style))
        for style in STYLES
    ]
    return json.dumps(dict(styles=styles, benchmarks=input.benchmarks, config=config))


rule report:
    """results/report/index.html: per style the references, contents and outputs, the LoRA loss
    curve; the time per stage; the config used. It opens offline (images by relative path)."""
    input:
        refs=[style_refs(style) for style in STYLES],
        contents=[content_input(style) for style in STYLES],
        outputs=expand(rules.inject.output[0], style=STYLES),
        losses=[loss_curve(style) for style in STYLES if loss_curve(style)],
        benchmarks=benchmarks(),
    output:
        "results/report/index.html",
    log:
        "results/logs/report.log",
    params:
        manifest=report_manifest,
    threads: 1
    resources:
        **LIGHT_JOB,
    shell:
        "jstyleid report --manifest {params.manifest:q} --out {output:q} 2> {log:q}"
