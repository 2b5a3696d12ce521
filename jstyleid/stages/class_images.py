"""`jstyleid class-images`: DreamBooth class images for prior preservation (jstyleid/pipelines/class_images.py)."""

from __future__ import annotations

from ..errors import InputError
from ..pipelines.class_images import class_images


COMMAND = "class-images"
HELP = "generate DreamBooth class images (prior preservation) with the base model into out-dir/images/"


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser)
    parser.add_argument("--prompt", required=True, help="the class prompt, e.g. 'a painting'")
    parser.add_argument("--count", type=int, default=100, help="number of class images")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--steps", type=int, default=25, help="DDIM steps")
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=4)


def run(args):
    from ..engines import load_engine

    for option in ("count", "steps", "batch_size"):
        if getattr(args, option) < 1:
            raise InputError(f"--{option.replace('_', '-')}", "must be at least 1")
    if not args.prompt.strip():
        raise InputError("--prompt", "the class prompt is empty")
    engine = load_engine(args.engine, args.model, args.device, args.dtype)
    class_images(engine, args.prompt, args.count, args.out_dir, steps=args.steps, guidance=args.guidance,
                 resolution=args.resolution, seed=args.seed, batch_size=args.batch_size)
