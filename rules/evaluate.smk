"""Scores of every picture set (content, StyleID, each sweep setting) as the challenge computes them,
and the per-style choice of the submitted setting (`select`)."""


rule evaluate:
    """results/eval/scores.json: Hist, DINO, LPIPS, FID, CLIP-IQA, CLIP-R and the final score per
    style and setting (parts without local weights: unavailable). The per-image values are kept in the
    store: a rerun scores only the pictures it has not seen."""
    input:
        refs=[style_images(STYLES_DIR / style) for style in STYLES],
        contents=[content_input(style) for style in STYLES],
        outputs=expand(rules.inject.output[0], style=STYLES),
        sweeps=all_sweep_outputs(),
        manifest=manifest("evaluate"),
    output:
        report("results/eval/scores.json", caption="../report/scores.rst", category="Scores"),
    log:
        "results/logs/evaluate.log",
    benchmark:
        "results/benchmarks/evaluate/all.tsv"
    threads: 1
    resources:
        **MODEL_JOB,
    params:
        parts=config["evaluation"]["parts"],
        dino=config["evaluation"]["dino"],
        clip=config["evaluation"]["clip"],
        clip_iqa=config["evaluation"]["clip_iqa"],
        scaling=config["evaluation"]["clip_iqa_scaling"],
        torch_hub=config["evaluation"]["torch_hub"],
        words=clip_r_words(),
        device=config["device"],
    shell:
        "jstyleid evaluate --manifest {input.manifest:q} --out {output:q} --parts {params.parts}"
        " --dino {params.dino:q} --clip {params.clip:q} --clip-iqa {params.clip_iqa:q}"
        " --clip-iqa-scaling {params.scaling} --torch-hub={params.torch_hub:q} --clip-r-words={params.words:q}"
        " --device {params.device}{STORE} 2> {log:q}"
