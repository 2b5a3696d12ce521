"""`jstyleid <stage> ...`: argument parsing and exit codes only; each stage lives in its own module.

A stage module defines COMMAND, HELP, add_arguments(parser) and run(args).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .errors import DiskFull, InputError

STAGE_MODULES = [
    "engines.presets", "pipelines.class_images", "training.lora", "pipelines.generate", "pipelines.invert",
    "pipelines.inject", "pipelines.stylize", "stages.evaluate", "stages.submission", "reporting.report", "stages.gc",
    "stages.check",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jstyleid", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"jstyleid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")
    for name in STAGE_MODULES:
        module = importlib.import_module(f"jstyleid.{name}")
        stage = sub.add_parser(module.COMMAND, help=module.HELP, description=module.HELP)
        module.add_arguments(stage)
        stage.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        args.run(args)
    except InputError as err:
        print(f"jstyleid {args.command}: error: {err}", file=sys.stderr)
        return 2
    except DiskFull as err:
        print(f"jstyleid {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
