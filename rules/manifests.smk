"""The lists a job needs (its images, prompts, outputs, styles, settings) as a file, so that no command
line grows with the data: Linux refuses any one argument over 128 KiB. The stages read
`--args-file FILE` ({"--option": [values]}, jstyleid/cli.py) or, for report and evaluate, `--manifest FILE`."""

import json
import os


rule manifest:
    """results/manifests/<stage>/<job>.json from a params function (Snakemake's params trigger
    rewrites it when the lists change, and its new time reruns the job that reads it)."""
    input:
        # relative to the working directory: source_path()'s copy sits in a per-run cache and an absolute
        # path changes with a copied tree; either would make every manifest (and all after it) rerun
        os.path.relpath(Path(workflow.current_basedir.get_path_or_uri(secret_free=True), "manifest.j2")),
    output:
        "results/manifests/{stage}/{name}.json",
    wildcard_constraints:
        stage="|".join(MANIFEST_STAGES),
        name=".+",
    resources:
        **LIGHT_JOB,
    params:
        # ASCII JSON: Snakemake writes the file in the locale's encoding
        text=lambda w: json.dumps(PLAN.manifest(w.stage, w.name)),
    template_engine:
        "jinja2"
