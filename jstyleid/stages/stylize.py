"""`jstyleid stylize`: every content image x every style image in memory (the loop: jstyleid/pipelines/stylize.py)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..pipelines.stylize import stylize_pairs
from .options import add_batch_size_argument, add_injection_arguments, add_inversion_arguments, add_renamed_argument


COMMAND = "stylize"
HELP = "stylize every content image with every style image in memory (no caches): {content}__{style}.png"


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser, layers=True)
    add_renamed_argument(parser, "--content-images", "--content", required=True, nargs="+", metavar="IMG|DIR",
                         help="content images, or folders of them")
    add_renamed_argument(parser, "--style-images", "--style", required=True, nargs="+", metavar="IMG|DIR",
                         help="style images, or folders of them; each is a style of its own")
    add_renamed_argument(parser, "--out-dir", "--out", required=True, help="output folder")
    parser.add_argument("--grid", action="store_true",
                        help="also grid.png: contents down, styles across, labelled with their names")
    add_inversion_arguments(parser)
    add_injection_arguments(parser)
    add_renamed_argument(parser, "--latent-out-dir", "--latent-out", metavar="DIR",
                         help="also the final latents, {content}__{style}.npy")
    add_batch_size_argument(parser)


def run(args):
    from ..engines import load_engine
    from ..storage.inputs import image_files, load_rgb

    contents = image_files(args.content_images, "--content-images")
    styles = image_files(args.style_images, "--style-images")
    for option, folder in (("--out-dir", args.out_dir), ("--latent-out-dir", args.latent_out_dir)):
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise InputError(folder, f"{option}: exists and is not a folder")
    for path in contents + styles:
        load_rgb(path)  # every image decodes, before any work
    engine = load_engine(args.engine, args.model, args.device, args.dtype, layers=args.layers)
    stylize_pairs(engine, contents, styles, args.out_dir, args.latent_out_dir, steps=args.ddim_steps,
                  resolution=args.resolution, gamma=args.gamma, temperature=args.temperature,
                  use_adain=not args.no_adain, batch_size=args.batch_size, grid=args.grid)
