"""A refused style fails as a job of its own, so a run over many styles ends non-zero naming it
(the checks before any job runs are in common.smk; the summary of failures: the Snakefile's onerror)."""


localrules:
    check_inputs,


rule check_inputs:
    """Only for a style refused at workflow start: fails with the refusal's line, so the run ends
    non-zero and its summary names the style, while the other styles run (keep-going)."""
    output:
        touch("results/checks/{refused}.ok"),
    log:
        "results/logs/check_inputs/{refused}.log",
    benchmark:
        "results/benchmarks/check_inputs/{refused}.tsv"
    wildcard_constraints:
        refused="|".join(map(re.escape, REFUSED)) or "(?!)",
    threads: 1
    resources:
        **LIGHT_JOB,
    params:
        style_dir=lambda w: STYLES_DIR / w.refused,
    shell:
        "jstyleid check --style-dir {params.style_dir:q} 2> {log:q}"
