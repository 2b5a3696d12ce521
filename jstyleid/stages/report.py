"""`jstyleid report`: the offline HTML report of a workflow run (pages: jstyleid/reporting/report.py)."""

from __future__ import annotations

COMMAND = "report"
HELP = "write an offline HTML report: per style references | content | output, loss curve, timings, config"


def add_arguments(parser):
    parser.add_argument("--manifest", required=True, help="JSON file: the styles, benchmark files and config to show (written by the report rule)")
    parser.add_argument("--out", required=True, help="the HTML file to write")


def run(args):
    from ..reporting.report import write_report
    from ..storage.fileio import read_manifest

    write_report(read_manifest(args.manifest, "report"), args.out)
