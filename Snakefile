"""jstyleid: per style, DreamBooth LoRA -> content images -> DDIM inversion caches -> StyleID
injection -> challenge submission and an offline HTML report. The rules only wire the
`jstyleid` stages; settings: config.yaml (schema: schemas/config.schema.yaml)."""

from jstyleid.reporting import outcome


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/manifests.smk"
include: "rules/make_model.smk"
include: "rules/train_lora.smk"
include: "rules/generate.smk"
include: "rules/invert.smk"
include: "rules/inject.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/check.smk"


rule all:
    default_target: True
    input:
        "results/submission",
        rules.report.output[0],
        all_sweep_outputs(),
        rules.evaluate.output if evaluating() else [],
        expand(rules.check_inputs.output[0], refused=REFUSED),


# A run over many styles ends with a summary of what failed.
onsuccess:
    outcome.clear()


onerror:
    failures = outcome.summarize(log)
    logger.error(
        f"{len(failures)} job(s) failed (also in {outcome.TSV}, {outcome.HTML}):\n{outcome.table(failures)}"
    )
