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
    shell:
        "jstyleid generate --model {params.model:q} --lora {input.lora:q}"
        " --template {params.template:q} --ddim-steps {params.steps}"
        " --guidance {params.guidance} --resolution {params.resolution} --seed {params.seed}"
        " --batch-size {params.batch_size}{STORE} {params.engine} --args-file {input.args:q} 2> {log:q}"
