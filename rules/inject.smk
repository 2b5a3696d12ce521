rule inject:
    """StyleID: each content cache of the style stylised with all its style reference caches, for the
    style's own setting (styleid/) and every setting of its sweep (sweep/<label>/), every generation variant's
    caches included, in one job: the model loaded once, each cache opened once (and one sweep folder, as
    Snakemake refuses an output inside another job's folder); the store keeps finished images, so a new
    setting computes only its own."""
    input:
        model=model_input,
        content=rules.invert_content.output[0],
        style=rules.invert_style.output[0],
        variant_contents=lambda w: variant_cache_folders(w.style),
        args=lambda w: manifest("inject", w.style),
        settings=lambda w: manifest("inject_settings", w.style),
    output:
        styleid=shown(
            directory("results/{style}/styleid"),
            "styleid",
            "3 StyleID outputs",
            patterns=["{name}.png"],
            labels={"style": "{style}", "image": "{name}"},
        ),
        sweep=shown(
            directory("results/{style}/sweep"),
            "sweep",
            "4 sweep",
            patterns=["{label}/{name}.png"],
            labels={"image": "{name}", "setting": "{label}"},
        ),
    log:
        "results/logs/inject/{style}.log",
    benchmark:
        "results/benchmarks/inject/{style}.tsv"
    threads: 1
    resources:
        **MODEL_JOB,
    params:
        model=model_param,
        engine=ENGINE,
        gamma=per_style("gamma"),  # shown in the StyleID outputs' caption (report/styleid.rst)
        temperature=per_style("temperature"),
        steps=per_style("inversion_steps"),
        resolution=per_style("resolution"),
        batch_size=config["batch_size"],
    shell:
        "jstyleid inject --model {params.model:q}"
        " --expect-ddim-steps {params.steps} --expect-resolution {params.resolution}"
        " --batch-size {params.batch_size}{STORE} {params.engine} --args-file {input.args:q}"
        " --settings {input.settings:q} 2> {log:q}"
        # a style without a sweep has an empty sweep folder
        " && mkdir -p {output.sweep:q}"
