rule inject:
    """StyleID: each content cache of the style stylised with all its style reference caches."""
    input:
        model=MODEL_INPUT,
        content=rules.invert_content.output[0],
        style=rules.invert_style.output[0],
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
        contents=lambda w, input: files_in(input.content, prompts(w.style), ".h5"),
        styles=lambda w, input: files_in(input.style, [p.stem for p in style_refs(w.style)], ".h5"),
        outs=lambda w, output: files_in(output[0], prompts(w.style), ".png"),
        gamma=per_style("gamma"),
        temperature=per_style("temperature"),
        no_adain=lambda w: "" if setting(w.style, "adain") else "--no-adain",
        batch_size=config["batch_size"],
    shell:
        "jstyleid inject --model {params.model:q} --content {params.contents:q} --style {params.styles:q}"
        " --out {params.outs:q} --gamma {params.gamma} --temperature {params.temperature}"
        " --batch-size {params.batch_size} {params.no_adain} {params.engine} 2> {log:q}"


use rule inject as inject_sweep with:
    output:
        shown(
            directory("results/{style}/sweep/g{gamma}_t{temperature}"),
            "sweep",
            "4 sweep",
            patterns=["{name}.png"],
            labels={"image": "{name}", "gamma": "{gamma}", "temperature": "{temperature}"},
        ),
    log:
        "results/logs/inject_sweep/{style}_g{gamma}_t{temperature}.log",
    benchmark:
        "results/benchmarks/inject_sweep/{style}_g{gamma}_t{temperature}.tsv"
    params:
        gamma=lambda w: w.gamma,
        temperature=lambda w: w.temperature,
