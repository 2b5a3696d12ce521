"""`jstyleid class-images`: DreamBooth class images for prior preservation (jstyleid/pipelines/class_images.py)."""

from __future__ import annotations

from ..errors import InputError
from ..pipelines.class_images import class_images
from .options import add_batch_size_argument, add_ddim_steps_argument, positive_int


COMMAND = "class-images"
HELP = "generate DreamBooth class images (prior preservation) with the base model into out-dir/images/"


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser)
    parser.add_argument("--prompt", required=True, help="the class prompt, e.g. 'a painting'")
    parser.add_argument("--count", type=positive_int, default=100, help="number of class images")
    parser.add_argument("--out-dir", required=True)
    add_ddim_steps_argument(parser)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    add_batch_size_argument(parser)


def run(args):
    from ..engines import load_engine

    if not args.prompt.strip():
        raise InputError("--prompt", "the class prompt is empty")
    engine = load_engine(args.engine, args.model, args.device, args.dtype)
    class_images(engine, args.prompt, args.count, args.out_dir, steps=args.ddim_steps, guidance=args.guidance,
                 resolution=args.resolution, seed=args.seed, batch_size=args.batch_size)
