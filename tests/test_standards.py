"""Snakemake's own standards (snakefmt, `snakemake --lint`), the config documentation, and the
import structure of the engines."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import yaml

from test_workflow import copy_workflow, snakemake

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = ["Snakefile", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "rules").glob("*.smk"))]


def test_rules_are_snakefmt_formatted():
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "--diff", *RULE_FILES],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, f"run `snakefmt Snakefile rules/`:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"


def lint_titles(text: str) -> dict[str, set[str]]:
    """{lint title: the rules or snakefiles it was reported for} from `snakemake --lint` text output."""
    found: dict[str, set[str]] = {}
    subject = None
    for line in text.splitlines():
        if line.startswith("Lints for "):
            subject = line.removeprefix("Lints for ").split(" (")[0].rstrip(":")
        elif subject and (match := re.match(r"    \* (.+?):?$", line)):
            found.setdefault(match[1].rstrip(".:"), set()).add(subject)
    return found


def justified_lints() -> set[str]:
    """The lints the README's "Snakemake's standards" paragraph justifies, one `- *title*:` line each."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("**Snakemake's standards.**", 1)[1].split("\n\n", 1)[0]
    return {title.rstrip(".") for title in re.findall(r"^- \*(.+?)\*:", section, flags=re.M)}


def test_lint_reports_only_what_the_readme_justifies(tmp_path):
    # Snakemake 9.27 ignores `--lint json`, so the text output is parsed.
    result = snakemake(copy_workflow(tmp_path / "wf"), "--lint", check=False)
    lints = lint_titles(result.stdout + result.stderr)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr, result.stderr[-3000:]
    unjustified = {title: subjects for title, subjects in lints.items() if title not in justified_lints()}
    assert not unjustified, f"snakemake --lint: {unjustified}"
    assert justified_lints() <= set(lints), "README justifies a lint snakemake no longer reports"


def test_lint_parser_reads_snakemakes_format():
    text = ("Lints for rule inject (line 1, /x/rules/inject.smk):\n"
            "    * Param model is a prefix of input or output file but hardcoded:\n"
            "      If this is meant to represent a file path prefix, ...\n"
            "Lints for snakefile /x/rules/model.smk:\n"
            "    * Mixed rules and functions in same snakefile.:\n")
    assert lint_titles(text) == {"Param model is a prefix of input or output file but hardcoded": {"rule inject"},
                                 "Mixed rules and functions in same snakefile": {"snakefile /x/rules/model.smk"}}


def test_config_readme_describes_every_config_file_and_profile():
    readme = (ROOT / "config/README.md").read_text()
    files = ["config.yaml", *(str(p.relative_to(ROOT)) for p in (ROOT / "config").glob("*.yaml")),
             *(str(p.relative_to(ROOT)) for p in (ROOT / "profiles").glob("*/config.yaml"))]
    missing = [f for f in files if f"`{f}`" not in readme]
    assert not missing, f"config/README.md does not describe {missing}"


def test_config_readme_names_only_real_keys():
    readme = (ROOT / "config/README.md").read_text()
    table = readme.split("## The keys users change most", 1)[1]
    named = {key for row in re.findall(r"^\| (`.+?`) \|", table, flags=re.M) for key in re.findall(r"`(\w+)`", row)}
    schema = yaml.safe_load((ROOT / "schemas/config.schema.yaml").read_text())["properties"]
    assert len(named) >= 10 and not named - set(schema), f"not in the schema: {named - set(schema)}"


def test_engines_import_no_stage_module():
    """The engines sit below the stages: no module of jstyleid/engines/ imports a stage module (one with
    COMMAND), so `jstyleid.training.lora -> engines -> stages.train_lora` cannot come back."""
    package = ROOT / "jstyleid"
    stages = {p.stem for p in (package / "stages").glob("*.py") if re.search(r"^COMMAND = ", p.read_text(), flags=re.M)}
    assert "train_lora" in stages
    offenders = []
    for path in (package / "engines").rglob("*.py"):
        here = ["jstyleid", *path.relative_to(package).parent.parts]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = here[: len(here) - node.level + 1] if node.level else []
                absolute = ".".join([*base, *([node.module] if node.module else [])])
                names = [absolute] + [f"{absolute}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[:3] in
                          [["jstyleid", "stages", stage] for stage in stages]]
    assert not offenders, offenders
