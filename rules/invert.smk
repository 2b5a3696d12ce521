rule invert_style:
    """DDIM inversion caches of the chosen style references, with the base model."""
    input:
        model=model_input,
        images=lambda w: style_refs(w.style),
        args=lambda w: manifest("invert_style", w.style),
    output:
        directory("results/{style}/cache/style"),
    log:
        "results/logs/invert_style/{style}.log",
    benchmark:
        "results/benchmarks/invert_style/{style}.tsv"
    threads: 1
    resources:
        **MODEL_JOB,
    params:
        model=model_param,
        engine=ENGINE,
        role="style",
        steps=per_style("inversion_steps"),
        resolution=per_style("resolution"),
        features=config["features"],
        layers=lambda w: "" if config["features"] == "recompute" else recorded_layers_flag(w.style),
        batch_size=config["batch_size"],
    shell:
        "jstyleid invert --model {params.model:q} --role {params.role}"
        " --ddim-steps {params.steps} --resolution {params.resolution}"
        " --batch-size {params.batch_size}{STORE} --features {params.features} {params.layers} {params.engine}"
        " --args-file {input.args:q} 2> {log:q}"


use rule invert_style as invert_content with:
    input:
        model=model_input,
        images=lambda w: content_input(w.style),
        args=lambda w: manifest("invert_content", w.style),
    output:
        directory("results/{style}/cache/content"),
    log:
        "results/logs/invert_content/{style}.log",
    benchmark:
        "results/benchmarks/invert_content/{style}.tsv"
    params:
        role="content",


use rule invert_style as invert_content_variant with:
    """DDIM inversion caches of a generation variant's content images."""
    input:
        model=model_input,
        images=lambda w: rules.generate_variant.output[0].format(style=w.style, variant=w.variant),
        args=lambda w: manifest("invert_content", f"{w.style}/{w.variant}"),
    output:
        directory("results/{style}/variants/{variant}/cache/content"),
    log:
        "results/logs/invert_content/{style}/{variant}.log",
    benchmark:
        "results/benchmarks/invert_content/{style}/{variant}.tsv"
    params:
        role="content",
