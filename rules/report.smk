# Copying files and writing a page: run on the submitting machine, not as cluster jobs.
localrules:
    submission,
    report,


rule submission:
    """The challenge layout: results/submission/XX/{prompt}.png, mapping.json beside them."""
    input:
        prompts=expand(STYLES_DIR / "{style}/prompt.json", style=STYLES),
        images=expand(rules.inject.output[0], style=STYLES),
        candidates=selection_inputs(),
        args=manifest("submission"),
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
        "jstyleid submission --out-dir {output:q} --args-file {input.args:q} 2> {log:q}"


rule report:
    """results/report/index.html: per style the references, contents and outputs, the LoRA loss
    curve, the sweep's grid; the time per stage; the config used. Self-contained: thumbnails in img/."""
    input:
        refs=[style_refs(style) for style in STYLES],
        contents=[content_input(style) for style in STYLES],
        outputs=expand(rules.inject.output[0], style=STYLES),
        sweeps=all_sweep_outputs(),
        losses=[loss_curve(style) for style in STYLES if loss_curve(style)],
        benchmarks=benchmarks(),
        scores=rules.evaluate.output if evaluating() else [],
        manifest=manifest("report"),
    output:
        report(
            directory("results/report"),
            htmlindex="index.html",
            caption="../report/html_report.rst",
            category="Overview",
        ),
    log:
        "results/logs/report.log",
    benchmark:
        "results/benchmarks/report/all.tsv"
    threads: 1
    resources:
        **LIGHT_JOB,
    params:
        index=lambda w, output: f"{output[0]}/index.html",
    shell:
        "jstyleid report --manifest {input.manifest:q} --out {params.index:q} 2> {log:q}"
