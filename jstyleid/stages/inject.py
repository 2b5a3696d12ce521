"""`jstyleid inject`: StyleID injection from inversion caches (spec, "Injection"; the loop: jstyleid/pipelines/inject.py)."""

from __future__ import annotations

from ..errors import InputError
from ..pipelines.inject import inject_images, reference_groups
from ..storage.store import add_store_argument
from .options import add_batch_size_argument, add_injection_arguments, add_renamed_argument, positive_int


COMMAND = "inject"
HELP = "stylize content caches with style caches (StyleID attention injection) and decode to PNG"


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser, layers=True)
    add_renamed_argument(parser, "--content-caches", "--content", required=True, nargs="+",
                         help="content caches (.h5)")
    add_renamed_argument(parser, "--style-caches", "--style", required=True, nargs="+", action="extend",
                         help="style caches (.h5); several references are pooled (see --refs-mode)")
    parser.add_argument("--refs-mode", choices=("pool", "rotate"), default="pool",
                        help="pool: every content takes all references; rotate: content i takes reference i mod R")
    parser.add_argument("--out", nargs="+", required=True, help="one .png per content")
    add_injection_arguments(parser)
    parser.add_argument("--latent-out", nargs="+", help="one .npy per content: the final latent (4, h, w)")
    parser.add_argument("--features", choices=("auto", "stored", "recompute"), default="auto",
                        help="auto: stored when every cache holds features, else recompute")
    add_renamed_argument(parser, "--expect-ddim-steps", "--steps", type=positive_int,
                         help="refuse caches inverted with another number of DDIM steps")
    add_renamed_argument(parser, "--expect-resolution", "--resolution", type=positive_int,
                         help="refuse caches of another resolution")
    add_batch_size_argument(parser)
    add_store_argument(parser)


def run(args):
    if len(args.out) != len(args.content_caches):
        raise InputError("--out", f"{len(args.out)} outputs for {len(args.content_caches)} content caches")
    if args.latent_out and len(args.latent_out) != len(args.content_caches):
        raise InputError("--latent-out",
                         f"{len(args.latent_out)} outputs for {len(args.content_caches)} content caches")
    from ..storage.cache import check_compatible, open_caches
    from ..engines import load_engine
    from ..storage.fileio import check_names

    check_names(args.out)
    check_names(args.latent_out or [], "--latent-out")

    contents = open_caches(args.content_caches, "content")
    styles = open_caches(args.style_caches, "style")
    engine = load_engine(args.engine, args.model, args.device, args.dtype, layers=args.layers)
    mode = check_compatible(contents + styles, model=engine.fingerprint,
                            prediction_type=engine.schedule.prediction_type, layers=engine.injected_layers)
    if args.features == "stored" and mode != "stored":
        raise InputError("--features", "stored features were asked for, but some caches have none")
    for cache in contents + styles:
        if args.expect_ddim_steps is not None and cache.steps != args.expect_ddim_steps:
            raise InputError(cache.path, f"cache has {cache.steps} inversion steps, "
                                         f"--expect-ddim-steps is {args.expect_ddim_steps}")
        if args.expect_resolution is not None and cache.resolution != args.expect_resolution:
            raise InputError(cache.path, f"cache resolution is {cache.resolution}, "
                                         f"--expect-resolution is {args.expect_resolution}")
    mode = args.features if args.features != "auto" else mode
    for content_rows, style_rows in reference_groups(len(contents), len(styles), args.refs_mode):
        inject_images(engine, [contents[i] for i in content_rows], [styles[j] for j in style_rows],
                [args.out[i] for i in content_rows], args.latent_out and [args.latent_out[i] for i in content_rows],
                gamma=args.gamma, temperature=args.temperature, use_adain=not args.no_adain, mode=mode,
                batch_size=args.batch_size, store=args.store)
