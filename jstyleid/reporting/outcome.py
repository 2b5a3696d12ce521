"""The end of a workflow run: which jobs failed and why, from Snakemake's log and each job's log.

The Snakefile's onerror handler calls summarize(): a table (style, stage, the one-line error of
the job's log) goes to the run's log, to results/failures.tsv and to results/failures.html
(the report itself cannot be built while a style's jobs fail). onsuccess calls clear().
"""

from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass
from pathlib import Path

TSV = "results/failures.tsv"
HTML = "results/failures.html"  # not in results/report/: that folder is the report rule's output
_ERROR = re.compile(r"^jstyleid [\w-]+: error: ")
_EXCEPTION = re.compile(r"^[\w.]*(Error|Exception|Exit|Interrupt)\b.*?: ")


@dataclass(frozen=True)
class Failure:
    style: str
    stage: str
    error: str


def failed_jobs(snakemake_log) -> list[Failure]:
    """Every job that failed in the run Snakemake logged to `snakemake_log`, in the order it failed.

    A job retried into success (its outputs exist) is left out; so are repeated reports of one job.
    """
    failures, seen = [], set()
    for rule, fields in _error_blocks(Path(snakemake_log).read_text(encoding="utf-8", errors="replace")):
        logs = fields.get("log", "").removesuffix(" (check log file(s) for error details)").split(", ")
        outputs = [o for o in fields.get("output", "").split(", ") if o]
        if (rule, logs[0]) in seen or (outputs and all(Path(o).exists() for o in outputs)):
            continue
        seen.add((rule, logs[0]))
        log = Path(logs[0]) if logs[0] else None
        style = log.stem if log and log.parent.name == rule else "-"
        failures.append(Failure(style, rule, error_line(log) if log else "(the job has no log)"))
    return failures


def _error_blocks(text):
    """(rule, {field: value}) of each `Error in rule X:` block of a Snakemake log."""
    rule, fields = None, {}
    for line in text.splitlines() + [""]:
        if rule and line.startswith("    ") and ": " in line:
            key, value = line.strip().split(": ", 1)
            fields.setdefault(key, value)
            continue
        if rule:
            yield rule, fields
            rule, fields = None, {}
        match = re.match(r"Error in rule (\w+)", line)
        if match:
            rule = match.group(1)


def error_line(log: Path) -> str:
    """The one line that says why a job failed: jstyleid's own error line, else the exception that
    ended a traceback, else the log's last line."""
    try:
        lines = [line.strip() for line in log.read_text(encoding="utf-8", errors="replace").splitlines()]
    except OSError:
        return f"(no log at {log})"
    lines = [line for line in lines if line]
    for pattern in (_ERROR, _EXCEPTION):
        found = [line for line in lines if pattern.match(line)]
        if found:
            return found[-1]
    return lines[-1] if lines else f"(empty log {log})"


def table(failures) -> str:
    """A plain-text table for the run's log."""
    rows = [("style", "stage", "error")] + [(f.style, f.stage, f.error) for f in failures]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows)


def html_table(failures) -> str:
    """The failures as an HTML table (for failures.html and the report's section)."""
    rows = "".join(f"<tr><td>{html.escape(f.style)}</td><td>{html.escape(f.stage)}</td>"
                   f"<td><code>{html.escape(f.error)}</code></td></tr>\n" for f in failures)
    return f"<table><tr><th>Style</th><th>Stage</th><th>Error</th></tr>\n{rows}</table>"


def summarize(snakemake_logs, root=".") -> list[Failure]:
    """Write the failures of the run to TSV and HTML under `root`; return them."""
    from ..storage.fileio import atomic_path

    failures = [f for log in snakemake_logs for f in failed_jobs(log)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerows([("style", "stage", "error")] + [(f.style, f.stage, f.error) for f in failures])
    with atomic_path(Path(root, TSV)) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    page = ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>jstyleid: failed jobs</title></head>\n'
            f"<body><h1>Failed jobs</h1>\n{html_table(failures)}\n"
            "<p>Each job's full log is under results/logs/&lt;stage&gt;/. Fix the input named, then run the "
            "same command again: only what failed, and what follows it, runs.</p></body></html>\n")
    with atomic_path(Path(root, HTML)) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return failures


def clear(root=".") -> None:
    """After a run that failed nothing: remove an earlier run's summary."""
    for name in (TSV, HTML):
        Path(root, name).unlink(missing_ok=True)
