import hashlib
import shlex


def class_images_settings(style):
    """What the style's class images (prior preservation) depend on; None when it is off."""
    prompt = setting(style, "class_prompt")
    if not prompt:
        return None
    return dict(
        model=MODEL,
        engine=config["engine"],
        dtype=config["dtype"],
        prompt=prompt,
        count=setting(style, "num_class_images"),
        resolution=setting(style, "resolution"),
        seed=setting(style, "seed"),
        steps=config["gen_steps"],
        guidance=config["guidance"],
    )


def _class_key(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


# One class-image set per distinct settings, shared by every style that asks for the same.
CLASS_IMAGES = {_class_key(s): s for s in map(class_images_settings, STYLES) if s}


def class_images_dir(style):
    settings = class_images_settings(style)
    return f"results/class_images/{_class_key(settings)}" if settings else None


def train_lora_levers(style):
    """train-lora options of the training levers; empty at their defaults (the command stays as before)."""
    options = []
    if setting(style, "lr_scheduler") != "constant" or setting(style, "lr_warmup_steps"):
        options += [
            "--lr-scheduler",
            setting(style, "lr_scheduler"),
            "--lr-warmup-steps",
            setting(style, "lr_warmup_steps"),
        ]
    if setting(style, "gradient_accumulation_steps") != 1:
        options += ["--gradient-accumulation-steps", setting(style, "gradient_accumulation_steps")]
    if class_images_dir(style):
        options += [
            "--class-dir",
            class_images_dir(style),
            "--class-prompt",
            setting(style, "class_prompt"),
            "--prior-loss-weight",
            setting(style, "prior_loss_weight"),
        ]
    if setting(style, "lora_text_encoder"):
        options += [
            "--text-encoder-lora",
            "--text-encoder-rank",
            setting(style, "lora_text_encoder_rank"),
            "--text-encoder-lr",
            setting(style, "lora_text_encoder_lr"),
        ]
    if setting(style, "validation_every"):
        prompts = [p.replace("{style}", style) for p in setting(style, "validation_prompts")]
        if not prompts:
            raise WorkflowError(f"style {style}: validation_every is set but validation_prompts is empty")
        options += [
            "--validation-every",
            setting(style, "validation_every"),
            "--validation-prompt",
            *prompts,
            "--validation-steps",
            setting(style, "gen_steps"),
            "--validation-guidance",
            setting(style, "guidance"),
        ]
    return " ".join(shlex.quote(str(option)) for option in options)


wildcard_constraints:
    class_key="[0-9a-f]{16}",


rule class_images:
    """DreamBooth class images of prior preservation, with the base model; shared by styles of equal settings."""
    input:
        model=MODEL_INPUT,
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
        prompt=lambda w: CLASS_IMAGES[w.class_key]["prompt"],
        number=lambda w: CLASS_IMAGES[w.class_key]["count"],
        resolution=lambda w: CLASS_IMAGES[w.class_key]["resolution"],
        seed=lambda w: CLASS_IMAGES[w.class_key]["seed"],
        steps=lambda w: CLASS_IMAGES[w.class_key]["steps"],
        guidance=lambda w: CLASS_IMAGES[w.class_key]["guidance"],
        batch_size=config["batch_size"],
    shell:
        "jstyleid class-images --model {params.model:q} --prompt {params.prompt:q} --count {params.number}"
        " --resolution {params.resolution} --seed {params.seed} --steps {params.steps}"
        " --guidance {params.guidance} --batch-size {params.batch_size} --out-dir {output:q}"
        " {params.engine} 2> {log:q}"


rule train_lora:
    """DreamBooth LoRA on all images of the style folder (resumes from its checkpoint after a kill)."""
    input:
        model=MODEL_INPUT,
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
        steps=per_style("lora_steps"),
        rank=per_style("lora_rank"),
        lr=per_style("lora_lr"),
        batch_size=per_style("lora_batch_size"),
        resolution=per_style("resolution"),
        seed=per_style("seed"),
        instance_prompt=lambda w: setting(w.style, "instance_prompt").replace("{style}", w.style),
        levers=lambda w: train_lora_levers(w.style),
    shell:
        "jstyleid train-lora --model {params.model:q} --style-dir {params.style_dir:q}"
        " --out-dir {params.out_dir:q} --steps {params.steps} --rank {params.rank}"
        " --lr {params.lr} --batch-size {params.batch_size} --resolution {params.resolution}"
        " --seed {params.seed} --instance-prompt {params.instance_prompt:q} {params.levers}"
        " --checkpoint-every {resources.checkpoint_every} {params.engine} 2> {log:q}"
