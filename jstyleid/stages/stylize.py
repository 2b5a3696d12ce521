"""`jstyleid stylize`: every content image x every style image in memory (the loop: jstyleid/pipelines/stylize.py)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..pipelines.stylize import stylize_pairs


COMMAND = "stylize"
HELP = "stylize every content image with every style image in memory (no caches): {content}__{style}.png"


def add_arguments(parser):
    from ..engines import add_engine_arguments
    from .options import add_injection_arguments, add_inversion_arguments

    add_engine_arguments(parser, layers=True)
    parser.add_argument("--content", nargs="+", required=True, metavar="IMG|DIR",
                        help="content images, or folders of them")
    parser.add_argument("--style", nargs="+", required=True, metavar="IMG|DIR",
                        help="style images, or folders of them; each is a style of its own")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--grid", action="store_true",
                        help="also grid.png: contents down, styles across, labelled with their names")
    add_inversion_arguments(parser)
    add_injection_arguments(parser)
    parser.add_argument("--latent-out", metavar="DIR", help="also the final latents, {content}__{style}.npy")
    parser.add_argument("--batch-size", type=int, default=4)


def run(args):
    from ..engines import load_engine
    from ..storage.inputs import image_files, load_rgb
    from ..core.schedule import timesteps

    contents, styles = image_files(args.content, "--content"), image_files(args.style, "--style")
    for option, folder in (("--out", args.out), ("--latent-out", args.latent_out)):
        if folder and Path(folder).exists() and not Path(folder).is_dir():
            raise InputError(folder, f"{option}: exists and is not a folder")
    if args.batch_size < 1:
        raise InputError("--batch-size", f"{args.batch_size} is not a positive number")
    timesteps(args.steps)  # refuses a bad --steps before the model loads
    for path in contents + styles:
        load_rgb(path)  # every image decodes, before any work
    engine = load_engine(args.engine, args.model, args.device, args.dtype, layers=args.layers)
    stylize_pairs(engine, contents, styles, args.out, args.latent_out, steps=args.steps,
                  resolution=args.resolution, gamma=args.gamma, temperature=args.temperature,
                  use_adain=not args.no_adain, batch_size=args.batch_size, grid=args.grid)
