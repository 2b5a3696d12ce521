"""`jstyleid report`: the offline HTML report of a workflow run (pages: jstyleid/reporting/report.py)."""

from __future__ import annotations

import json

from ..errors import InputError

COMMAND = "report"
HELP = "write an offline HTML report: per style references | content | output, loss curve, timings, config"


def add_arguments(parser):
    parser.add_argument("--manifest", required=True, help="JSON text: the styles, benchmark files and config to show")
    parser.add_argument("--out", required=True, help="the HTML file to write")


def run(args):
    from ..reporting.report import write_report

    try:
        manifest = json.loads(args.manifest)
    except json.JSONDecodeError as err:
        raise InputError("--manifest", f"not a report manifest ({err!r})") from None
    write_report(manifest, args.out)
