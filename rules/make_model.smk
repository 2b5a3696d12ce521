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
        "jstyleid make-model --preset {wildcards.preset} --out-dir {output:q} 2> {log:q}"
