rule train_lora:
    """DreamBooth LoRA on all images of the style folder."""
    input:
        model=MODEL_INPUT,
        images=lambda w: style_images(STYLES_DIR / w.style),
    output:
        weights="results/{style}/lora/pytorch_lora_weights.safetensors",
        loss=shown(multiext("results/{style}/lora/loss", ".csv", ".png"), "lora_loss", "1 LoRA training"),
    log:
        "results/logs/train_lora/{style}.log",
    benchmark:
        "results/benchmarks/train_lora/{style}.tsv"
    threads: 1
    resources:
        **MODEL_JOB,
    params:
        model=model_param,
        engine=ENGINE,
        style_dir=lambda w: STYLES_DIR / w.style,
        out_dir=lambda w, output: Path(output.weights).parent,
        steps=per_style("lora_steps"),
        rank=per_style("lora_rank"),
        lr=per_style("lora_lr"),
        batch_size=per_style("lora_batch_size"),
        resolution=per_style("resolution"),
        seed=per_style("seed"),
        instance_prompt=lambda w: setting(w.style, "instance_prompt").replace("{style}", w.style),
    shell:
        "jstyleid train-lora --model {params.model:q} --style-dir {params.style_dir:q}"
        " --out-dir {params.out_dir:q} --steps {params.steps} --rank {params.rank}"
        " --lr {params.lr} --batch-size {params.batch_size} --resolution {params.resolution}"
        " --seed {params.seed} --instance-prompt {params.instance_prompt:q} {params.engine} 2> {log:q}"
