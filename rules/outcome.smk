"""A run over many styles: a refused style fails as a job of its own, and the run ends with a summary
of what failed (the disk check before any job runs is in common.smk)."""

from jstyleid.reporting import outcome


localrules:
    check_inputs,


rule check_inputs:
    """Only for a style refused at workflow start: fails with the refusal's line, so the run ends
    non-zero and its summary names the style, while the other styles run (keep-going)."""
    output:
        touch("results/checks/{refused}.ok"),
    log:
        "results/logs/check_inputs/{refused}.log",
    wildcard_constraints:
        refused="|".join(map(re.escape, REFUSED)) or "(?!)",
    threads: 1
    resources:
        **LIGHT_JOB,
    params:
        style_dir=lambda w: STYLES_DIR / w.refused,
    shell:
        "jstyleid check --style-dir {params.style_dir:q} 2> {log:q}"


onsuccess:
    outcome.clear()


onerror:
    failures = outcome.summarize(log)
    logger.error(
        f"{len(failures)} job(s) failed (also in {outcome.TSV}, {outcome.HTML}):\n{outcome.table(failures)}"
    )
