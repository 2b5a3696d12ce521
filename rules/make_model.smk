rule make_model:
    """A randomly initialised SD 2.x-structured model (`model: builtin:<preset>`), built once."""
    output:
        directory("results/model/{preset}"),
    log:
        "results/logs/make_model/{preset}.log",
    benchmark:
        "results/benchmarks/make_model/{preset}.tsv"
    threads: 1
    resources:
        **LIGHT_JOB,
    shell:
        "jstyleid make-model --preset {wildcards.preset} --out {output:q} 2> {log:q}"


# The model every stage loads: a preset built above, a local diffusers folder or a hub id.
# A folder is an input, so the jobs wait for (and rerun after) its build; a hub id in the
# local cache is not a file Snakemake could track.
BUILTIN = config["model"].removeprefix("builtin:") if config["model"].startswith("builtin:") else None
MODEL = expand(rules.make_model.output[0], preset=BUILTIN)[0] if BUILTIN else config["model"]
MODEL_INPUT = [MODEL] if BUILTIN or Path(MODEL).exists() else []
