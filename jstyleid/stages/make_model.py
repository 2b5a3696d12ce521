"""`jstyleid make-model`: write a preset model (jstyleid/engines/presets.py) in diffusers layout."""

from __future__ import annotations

from ..engines.presets import PRESETS, make_model
from .options import add_renamed_argument


COMMAND = "make-model"
HELP = "write a randomly initialised SD 2.x-structured model in diffusers layout"


def add_arguments(parser):
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    add_renamed_argument(parser, "--out-dir", "--out", required=True, help="folder to write (diffusers layout)")
    parser.add_argument("--seed", type=int, default=0)


def run(args):
    make_model(args.preset, args.out_dir, seed=args.seed)
