rule generate:
    """One content image per prompt of the style, with the style's LoRA (or the one shared by all styles)."""
    input:
        model=model_input,
        lora=lambda w: lora_weights(w.style),
        init=lambda w: init_images(w.style),
        references=lambda w: candidate_references(w.style),
        args=lambda w: manifest("generate", w.style),
    output:
        shown(
            directory("results/{style}/content"),
            "content",
            "2 content images",
            patterns=["{name,[^/]+}.png"],  # not the candidates/ subfolders
            labels={"style": "{style}", "image": "{name}"},
        ),
    log:
        "results/logs/generate/{style}.log",
    benchmark:
        "results/benchmarks/generate/{style}.tsv"
    threads: 1
    resources:
        **MODEL_JOB,
    params:
        model=model_param,
        engine=ENGINE,
        template=lambda w: setting(w.style, "template").replace("{style}", w.style),
        steps=per_style("gen_steps"),
        guidance=per_style("guidance"),
        resolution=per_style("resolution"),
        seed=per_style("seed"),
        batch_size=config["batch_size"],
        # derived from the input, so no params trigger: the LoRA's own rerun reruns this job
        lora=lambda w, input: generation_lora(w.style, input.lora),
    shell:
        "jstyleid generate --model {params.model:q} --lora {params.lora:q}"
        " --template {params.template:q} --ddim-steps {params.steps}"
        " --guidance {params.guidance} --resolution {params.resolution} --seed {params.seed}"
        " --batch-size {params.batch_size}{STORE} {params.engine} --args-file {input.args:q} 2> {log:q}"


use rule generate as generate_variant with:
    """A generation variant of `sweep:` (its LoRA snapshot, strength, guidance): one content image per prompt."""
    input:
        model=model_input,
        lora=lambda w: lora_weights(w.style),
        init=lambda w: init_images(w.style),
        references=lambda w: candidate_references(w.style),
        args=lambda w: manifest("generate", f"{w.style}/{w.variant}"),
    output:
        directory("results/{style}/variants/{variant}/content"),
    log:
        "results/logs/generate/{style}/{variant}.log",
    benchmark:
        "results/benchmarks/generate/{style}/{variant}.tsv"
    params:
        guidance=lambda w: generation(w.style, w.variant)["guidance"],
        lora=lambda w, input: generation_lora(w.style, input.lora, w.variant),
