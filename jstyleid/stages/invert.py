"""`jstyleid invert`: DDIM inversion of images into HDF5 caches (spec, "Inversion"; the loop: jstyleid/pipelines/invert.py)."""

from __future__ import annotations

from ..errors import InputError
from ..pipelines.invert import invert_images
from ..storage.store import add_store_argument
from .options import add_batch_size_argument, add_deprecated_alias, add_inversion_arguments, add_renamed_argument


COMMAND = "invert"
HELP = "DDIM-invert images with the base model into HDF5 caches (latents + self-attention features)"


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser, layers=True)
    add_renamed_argument(parser, "--images", "--image", required=True, nargs="+", help="input images")
    parser.add_argument("--role", choices=("content", "style"), required=True,
                        help="content caches keep q, style caches keep k and v")
    parser.add_argument("--out", nargs="+", required=True, help="one .h5 per image")
    add_inversion_arguments(parser)
    features = parser.add_argument("--features", choices=("stored", "recompute"), default="stored",
                                   help="stored: caches hold the attention features; recompute: only the latents "
                                        "(inject then recomputes the features)")
    add_deprecated_alias(parser, "--no-features", features, value="recompute")
    parser.add_argument("--feature-dtype", choices=("float16", "float32"), default="float16")
    add_batch_size_argument(parser)
    add_store_argument(parser)


def run(args):
    if len(args.images) != len(args.out):
        raise InputError("--out", f"{len(args.out)} outputs for {len(args.images)} images")
    from ..engines import load_engine
    from ..storage.fileio import check_names

    check_names(args.out)

    engine = load_engine(args.engine, args.model, args.device, args.dtype, layers=args.layers)
    invert_images(engine, args.images, args.out, role=args.role, steps=args.ddim_steps, resolution=args.resolution,
                  features=args.features == "stored", feature_dtype=args.feature_dtype, batch_size=args.batch_size,
                  store=args.store)
