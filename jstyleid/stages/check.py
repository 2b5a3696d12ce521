"""`jstyleid check`: a style folder's inputs, checked before any model runs.

The workflow runs the same check on every style at start (rules/common.smk) and leaves a refused
style out, so that the other styles still run; its one line appears in the run's summary.
"""

from __future__ import annotations

import logging

from ..storage.inputs import check_style

COMMAND = "check"
HELP = "check style folders (prompt.json, the file name of every prompt, the images) in one line each"
log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--style-dir", nargs="+", required=True, help="style folders XX (XX/images/*, XX/prompt.json)")
    parser.add_argument("--decode", action="store_true", help="also decode every image (slower; finds corrupt files)")


def run(args):
    for folder in args.style_dir:
        names = check_style(folder, decode=args.decode)
        log.info("%s: %d prompts, file names %s", folder, len(names), ", ".join(sorted(names)))


