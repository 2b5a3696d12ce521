"""`jstyleid <stage> ...`: argument parsing and exit codes only; each stage lives in its own module.

A stage module (jstyleid/stages/*.py) defines COMMAND, HELP, add_arguments(parser) and run(args); the
CLI finds them there. The loops they call live in pipelines/, training/ and reporting/.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys

from . import __version__
from .errors import DiskFull, InputError

ARGS_FILE = "--args-file"
# Stages that never load LoRA weights: their job processes import diffusers without peft (2-3 s less start-up).
STAGES_WITHOUT_LORA = ("invert", "inject")

class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (exit status 2), as every other refusal is."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def stage_modules():
    """Every module of jstyleid/stages/ that defines COMMAND, in file-name order."""
    from . import stages

    names = sorted(info.name for info in pkgutil.iter_modules(stages.__path__))
    return [m for m in (importlib.import_module(f"{stages.__name__}.{n}") for n in names) if hasattr(m, "COMMAND")]


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="jstyleid", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"jstyleid {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="<stage>")
    for module in stage_modules():
        stage = sub.add_parser(module.COMMAND, help=module.HELP, description=module.HELP)
        module.add_arguments(stage)
        stage.set_defaults(run=module.run)
    return parser


def expand_args_files(argv: list[str]) -> list[str]:
    """`--args-file FILE` replaced by the options FILE holds, a JSON object {"--option": value or
    [values]}: the workflow's lists of images, prompts and outputs travel in a file, since Linux caps
    one command-line argument at 128 KiB and the whole line at a few MiB."""
    expanded = []
    rest = iter(argv)
    for arg in rest:
        if arg != ARGS_FILE:
            expanded.append(arg)
            continue
        path = next(rest, None)
        if path is None:
            raise InputError(ARGS_FILE, "needs a file")
        try:
            with open(path, encoding="utf-8") as file:
                options = json.load(file)
            if not isinstance(options, dict) or not all(str(key).startswith("--") for key in options):
                raise ValueError('not a JSON object of {"--option": value or [values]}')
        except (OSError, ValueError) as err:
            raise InputError(path, f"not a readable arguments file ({err})") from None
        for option, value in options.items():
            expanded += [option, *map(str, value if isinstance(value, list) else [value])]
    return expanded


def main(argv: list[str] | None = None) -> int:
    """`argv` None: this process is the job itself (the console script, python -m jstyleid.cli)."""
    job_process = argv is None
    try:
        argv = expand_args_files(sys.argv[1:] if argv is None else argv)
    except InputError as err:
        print(f"jstyleid: error: {err}", file=sys.stderr)
        return 2
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # a usage error (2) or --help/--version (0): an exit status like any other
        return done.code
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if job_process and args.command in STAGES_WITHOUT_LORA and args.engine == "torch":
        from .engines import import_model_classes_without_peft

        import_model_classes_without_peft()
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
