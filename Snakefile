"""jstyleid: per style, DreamBooth LoRA -> content images -> DDIM inversion caches -> StyleID
injection -> challenge submission and an offline HTML report. The rules only wire the
`jstyleid` stages; settings: config.yaml (schema: schemas/config.schema.yaml)."""


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/manifest_lists.smk"
include: "rules/manifests.smk"
include: "rules/model.smk"
include: "rules/dreambooth.smk"
include: "rules/generation.smk"
include: "rules/content.smk"
include: "rules/invert.smk"
include: "rules/inject.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/outcome.smk"


rule all:
    default_target: True
    input:
        "results/submission",
        rules.report.output[0],
        [p["outputs"] for style in STYLES for p in sweep_settings(style)],
        rules.evaluate.output if evaluating() else [],
        expand(rules.check_inputs.output[0], refused=REFUSED),
