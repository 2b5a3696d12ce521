"""`jstyleid invert`: DDIM inversion of images into HDF5 caches (spec, "Inversion"; the loop: jstyleid/pipelines/invert.py)."""

from __future__ import annotations

from ..errors import InputError
from ..pipelines.invert import invert_images
from ..storage.store import add_store_argument
from .options import add_inversion_arguments


COMMAND = "invert"
HELP = "DDIM-invert images with the base model into HDF5 caches (latents + self-attention features)"


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser, layers=True)
    parser.add_argument("--image", nargs="+", required=True, help="input images")
    parser.add_argument("--role", choices=("content", "style"), required=True,
                        help="content caches keep q, style caches keep k and v")
    parser.add_argument("--out", nargs="+", required=True, help="one .h5 per image")
    add_inversion_arguments(parser)
    parser.add_argument("--no-features", action="store_true",
                        help="store only the latents; inject then recomputes the features")
    parser.add_argument("--feature-dtype", choices=("float16", "float32"), default="float16")
    parser.add_argument("--batch-size", type=int, default=4)
    add_store_argument(parser)


def run(args):
    if len(args.image) != len(args.out):
        raise InputError("--out", f"{len(args.out)} outputs for {len(args.image)} images")
    from ..engines import load_engine
    from ..storage.fileio import check_names

    check_names(args.out)

    engine = load_engine(args.engine, args.model, args.device, args.dtype, layers=args.layers)
    invert_images(engine, args.image, args.out, role=args.role, steps=args.steps, resolution=args.resolution,
                  features=not args.no_features, feature_dtype=args.feature_dtype, batch_size=args.batch_size,
                  store=args.store)
