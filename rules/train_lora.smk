rule class_images:
    """DreamBooth class images of prior preservation, with the base model; shared by styles of equal settings."""
    input:
        model=model_input,
    output:
        directory("results/class_images/{class_key}"),
    log:
        "results/logs/class_images/{class_key}.log",
    benchmark:
        "results/benchmarks/class_images/{class_key}.tsv"
    threads: 1
    resources:
        **MODEL_JOB,
    params:
        model=model_param,
        engine=ENGINE,
        prompt=class_images_setting("prompt"),
        number=class_images_setting("count"),
        resolution=class_images_setting("resolution"),
        seed=class_images_setting("seed"),
        steps=class_images_setting("steps"),
        guidance=class_images_setting("guidance"),
        batch_size=config["batch_size"],
    shell:
        "jstyleid class-images --model {params.model:q} --prompt {params.prompt:q} --count {params.number}"
        " --resolution {params.resolution} --seed {params.seed} --ddim-steps {params.steps}"
        " --guidance {params.guidance} --batch-size {params.batch_size} --out-dir {output:q}"
        " {params.engine} 2> {log:q}"


rule train_lora:
    """DreamBooth LoRA on all images of the style folder (resumes from its checkpoint after a kill); with a
    lora_steps sweep, to its largest step, keeping the LoRA at each swept step (lora/snapshots/step-N/)."""
    input:
        model=model_input,
        images=lambda w: style_images(STYLES_DIR / w.style),
        class_images=lambda w: class_images_dir(w.style) or [],
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
        # A resource, not a param: the checkpoint interval changes no result, so it must not trigger a rerun.
        checkpoint_every=lambda w: setting(w.style, "lora_checkpoint_every"),
    params:
        model=model_param,
        engine=ENGINE,
        style_dir=lambda w: STYLES_DIR / w.style,
        out_dir=lambda w, output: Path(output.weights).parent,
        steps=lambda w: trained_steps(w.style),
        rank=per_style("lora_rank"),
        lr=per_style("lora_lr"),
        batch_size=per_style("lora_batch_size"),
        resolution=per_style("resolution"),
        seed=per_style("seed"),
        instance_prompt=lambda w: setting(w.style, "instance_prompt").replace("{style}", w.style),
        levers=lambda w: train_lora_levers(w.style),
    shell:
        "jstyleid train-lora --model {params.model:q} --style-dir {params.style_dir:q}"
        " --out-dir {params.out_dir:q} --train-steps {params.steps} --rank {params.rank}"
        " --lr {params.lr} --batch-size {params.batch_size} --resolution {params.resolution}"
        " --seed {params.seed} --instance-prompt {params.instance_prompt:q} {params.levers}"
        " --checkpoint-every {resources.checkpoint_every} {params.engine} 2> {log:q}"


rule train_lora_shared:
    """lora_scope: shared: one DreamBooth LoRA on the images of every style that generates its content, each
    image with its own style's token style_XX; every such style's generate loads it. Any style's images
    (and a new style) retrain it."""
    input:
        model=model_input,
        images=lambda w: shared_lora_images(),
        class_images=lambda w: class_images_dir(SHARED) or [],
        args=manifest("train_lora_shared"),
    output:
        weights="results/shared/lora/pytorch_lora_weights.safetensors",
        loss=report(
            multiext("results/shared/lora/loss", ".csv", ".png"),
            caption="../report/lora_loss_shared.rst",
            category="Shared LoRA",
            subcategory="1 LoRA training",
        ),
    log:
        "results/logs/train_lora_shared/all.log",
    benchmark:
        "results/benchmarks/train_lora_shared/all.tsv"
    threads: 1
    resources:
        **MODEL_JOB,
        checkpoint_every=config["lora_checkpoint_every"],  # a resource: it changes no result (as train_lora's)
    params:
        model=model_param,
        engine=ENGINE,
        out_dir=lambda w, output: Path(output.weights).parent,
        steps=trained_steps(SHARED),  # lora_steps_shared, or the largest step of a lora_steps sweep
        rank=shared_lora_setting("lora_rank"),
        lr=config["lora_lr"],
        batch_size=config["lora_batch_size"],
        resolution=config["resolution"],
        seed=config["seed"],
        levers=lambda w: train_lora_levers(SHARED),
    shell:
        "jstyleid train-lora --model {params.model:q}"
        " --out-dir {params.out_dir:q} --train-steps {params.steps} --rank {params.rank}"
        " --lr {params.lr} --batch-size {params.batch_size} --resolution {params.resolution}"
        " --seed {params.seed} {params.levers}"
        " --checkpoint-every {resources.checkpoint_every} {params.engine} --args-file {input.args:q} 2> {log:q}"
