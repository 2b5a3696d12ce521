rule generate:
    """One content image per prompt of the style, with the style's LoRA."""
    input:
        model=model_input,
        lora=rules.train_lora.output.weights,
        init=lambda w: init_images(w.style),
        references=lambda w: candidate_references(w.style),
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
        prompts=lambda w: list(prompts(w.style).values()),
        outs=lambda w, output: files_in(output[0], prompts(w.style), ".png"),
        template=lambda w: setting(w.style, "template").replace("{style}", w.style),
        steps=per_style("gen_steps"),
        guidance=per_style("guidance"),
        resolution=per_style("resolution"),
        seed=per_style("seed"),
        batch_size=config["batch_size"],
        init=lambda w: init_option(w.style),
        candidates=lambda w: candidates_option(w.style),
    shell:
        "jstyleid generate --model {params.model:q} --lora {input.lora:q} --prompt {params.prompts:q}"
        " --out {params.outs:q} --template {params.template:q} --ddim-steps {params.steps}"
        " --guidance {params.guidance} --resolution {params.resolution} --seed {params.seed}"
        " --batch-size {params.batch_size}{STORE} {params.init} {params.candidates} {params.engine} 2> {log:q}"
