"""`jstyleid make-model`: write a preset model (jstyleid/engines/presets.py) in diffusers layout."""

from __future__ import annotations

from ..engines.presets import PRESETS, make_model


COMMAND = "make-model"
HELP = "write a randomly initialised SD 2.x-structured model in diffusers layout"


def add_arguments(parser):
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--out", required=True, help="folder to write (diffusers layout)")
    parser.add_argument("--seed", type=int, default=0)


def run(args):
    make_model(args.preset, args.out, seed=args.seed)
