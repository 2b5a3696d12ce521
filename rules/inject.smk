rule inject:
    """StyleID: each content cache of the style stylised with all its style reference caches."""
    input:
        model=model_input,
        content=rules.invert_content.output[0],
        style=rules.invert_style.output[0],
        args=lambda w: manifest("inject", w.style),
    output:
        shown(
            directory("results/{style}/styleid"),
            "styleid",
            "3 StyleID outputs",
            patterns=["{name}.png"],
            labels={"style": "{style}", "image": "{name}"},
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
        gamma=per_style("gamma"),
        temperature=per_style("temperature"),
        no_adain=lambda w: "" if setting(w.style, "adain") else "--no-adain",
        steps=per_style("inversion_steps"),
        resolution=per_style("resolution"),
        layers=lambda w: layers_flag(setting(w.style, "layers")),
        refs_mode=lambda w: refs_mode_flag(setting(w.style, "style_refs_mode")),
        batch_size=config["batch_size"],
    shell:
        "jstyleid inject --model {params.model:q}"
        " --gamma {params.gamma} --temperature {params.temperature}"
        " --expect-ddim-steps {params.steps} --expect-resolution {params.resolution}"
        " --batch-size {params.batch_size}{STORE} {params.no_adain} {params.layers} {params.refs_mode}"
        " {params.engine} --args-file {input.args:q} 2> {log:q}"


use rule inject as inject_sweep with:
    input:
        model=model_input,
        content=rules.invert_content.output[0],
        style=rules.invert_style.output[0],
        args=lambda w: manifest("inject_sweep", f"{w.style}/{w.label}"),
    output:
        shown(
            directory("results/{style}/sweep/{label}"),
            "sweep",
            "4 sweep",
            patterns=["{name}.png"],
            labels={"image": "{name}", "setting": "{label}"},
        ),
    log:
        "results/logs/inject_sweep/{style}_{label}.log",
    benchmark:
        "results/benchmarks/inject_sweep/{style}_{label}.tsv"
    params:
        gamma=lambda w: sweep_params(w)["gamma"],
        temperature=lambda w: sweep_params(w)["temperature"],
        layers=lambda w: layers_flag(sweep_params(w)["layers"]),
        refs_mode=lambda w: refs_mode_flag(sweep_params(w)["style_refs_mode"]),
