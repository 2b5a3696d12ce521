"""A run over many styles: a refused style fails as a job of its own, the disk is checked for the
planned caches before any job runs, and the run ends with a summary of what failed."""

import sys

from jstyleid import outcome
from jstyleid.diskspace import planned_cache_bytes, check_room


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


def planned_caches():
    """(role, steps, resolution, missing cache files) of every style: what the inversions will write."""
    for style in STYLES:
        steps, resolution = setting(style, "inversion_steps"), setting(style, "resolution")
        for role, names in (("content", prompts(style)), ("style", [p.stem for p in style_refs(style)])):
            folder = f"results/{style}/cache/{role}"
            yield role, steps, resolution, [f for f in files_in(folder, names, ".h5") if not Path(f).exists()]


# Not for --unlock: recovering from a killed driver must work on a full disk too.
if workflow.is_main_process and "--unlock" not in sys.argv:
    try:
        check_room(planned_cache_bytes(config["model"], planned_caches(), features=config["features"]), "results")
    except InputError as err:
        raise WorkflowError(str(err))


onsuccess:
    outcome.clear()


onerror:
    failures = outcome.summarize(log)
    logger.error(
        f"{len(failures)} job(s) failed (also in {outcome.TSV}, {outcome.HTML}):\n{outcome.table(failures)}"
    )
