"""Argument types and groups that several stages share (a stage never imports another stage).

The CLI grammar (README, "Command-line options"): `--out` names output files (one per input, or the
one file a stage writes), `--out-dir` an output folder; `--ddim-steps` counts DDIM steps (one default
everywhere), `--train-steps` optimiser steps; inputs are named for what they are (`--images`,
`--content-caches`, `--style-images`, ...). Old spellings stay as hidden aliases for one release.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_DDIM_STEPS = 50


def _int_at_least(text: str, least: int, most: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"{value} is below {least}")
    if most is not None and value > most:
        raise argparse.ArgumentTypeError(f"{value} is above {most}")
    return value


def positive_int(text: str) -> int:
    """argparse type of counts (batch sizes, step counts): refused at parse time, before any model loads."""
    return _int_at_least(text, 1)


def ddim_steps(text: str) -> int:
    """argparse type of a DDIM step count: the range core.schedule.timesteps accepts."""
    from ..core.schedule import MAX_STEPS, MIN_STEPS

    return _int_at_least(text, MIN_STEPS, MAX_STEPS)


def non_negative_int(text: str) -> int:
    """argparse type of intervals where 0 means off (--checkpoint-every, --validation-every, ...)."""
    return _int_at_least(text, 0)


def add_renamed_argument(parser, new: str, old: str, *, required: bool = False, **kwargs):
    """Add option `new` and `old` as its hidden deprecated alias; returns the action of `new`.

    A required option and its alias form a required mutually exclusive group, so either spelling
    satisfies it (argparse leaves hidden options out of the "one of ... is required" message).
    """
    target = parser.add_mutually_exclusive_group(required=True) if required else parser
    action = target.add_argument(new, **kwargs)
    add_deprecated_alias(target, old, action)
    return action


def add_deprecated_alias(parser, old: str, action, value=None):
    """Hidden option `old` that warns on stderr and does what `action` (the new option) does; with
    `value`, `old` takes no argument and stands for `new value` (e.g. --no-features = --features recompute)."""
    new = action.option_strings[0]
    replacement = new if value is None else f"{new} {value}"

    class Deprecated(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"jstyleid: warning: {option_string} is deprecated and goes in the next release; "
                  f"use {replacement}", file=sys.stderr)
            action(parser, namespace, values if value is None else value, new)

    if value is None:
        parser.add_argument(old, dest=action.dest, nargs=action.nargs, type=action.type, choices=action.choices,
                            metavar=action.metavar, help=argparse.SUPPRESS, action=Deprecated)
    else:
        parser.add_argument(old, dest=action.dest, nargs=0, help=argparse.SUPPRESS, action=Deprecated)


def add_batch_size_argument(parser, default: int = 4):
    parser.add_argument("--batch-size", type=positive_int, default=default, help="images per model call")


def add_ddim_steps_argument(parser):
    """--ddim-steps (old: --steps) of the stages that sample or invert."""
    add_renamed_argument(parser, "--ddim-steps", "--steps", type=ddim_steps, default=DEFAULT_DDIM_STEPS,
                         help=f"DDIM steps N (2..999; default {DEFAULT_DDIM_STEPS})")


def add_inversion_arguments(parser):
    """The options of the inversion that `stylize` shares."""
    add_ddim_steps_argument(parser)
    parser.add_argument("--resolution", type=positive_int, default=512)


def add_injection_arguments(parser):
    """The options of the injection that `stylize` shares."""
    parser.add_argument("--gamma", type=float, default=0.75, help="query preservation")
    parser.add_argument("--temperature", type=float, default=1.5, help="attention temperature T")
    parser.add_argument("--no-adain", action="store_true", help="start from the content latent unchanged")
