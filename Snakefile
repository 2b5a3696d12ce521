"""jstyleid: per style, DreamBooth LoRA -> content images -> DDIM inversion caches -> StyleID
injection -> challenge submission and an offline HTML report. The rules only wire the
`jstyleid` stages; settings: config.yaml (schema: schemas/config.schema.yaml)."""


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/model.smk"
include: "rules/dreambooth.smk"
include: "rules/content.smk"
include: "rules/invert.smk"
include: "rules/inject.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        "results/submission",
        rules.report.output[0],
        [expand(rules.inject_sweep.output[0], **w) for style in STYLES for w in sweeps(style)],
