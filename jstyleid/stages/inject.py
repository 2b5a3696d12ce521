"""`jstyleid inject`: StyleID injection from inversion caches (spec, "Injection"; the loop: jstyleid/pipelines/inject.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import InputError
from ..pipelines.inject import REFS_MODES, Setting, inject_images, read_settings, reference_groups
from ..storage.store import add_store_argument
from .options import add_batch_size_argument, add_injection_arguments, add_renamed_argument, positive_int


log = logging.getLogger(__name__)
COMMAND = "inject"
HELP = "stylize content caches with style caches (StyleID attention injection) and decode to PNG"
SETTINGS_HELP = """\
a JSON file of several settings run with the model loaded once and each cache opened once (the
workflow's one inject job per style: its own setting and its sweep): a list of objects
{"out": [one .png per content cache], "latent_out": [...], "gamma": G, "temperature": T,
"adain": true|false, "layers": PRESET or [module paths], "refs_mode": "pool"|"rotate",
"content_caches": [.h5 files, as many as --content-caches: a generation variant's]}; a key
left out takes the command line's value; replaces --out and --latent-out"""


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser, layers=True)
    add_renamed_argument(parser, "--content-caches", "--content", required=True, nargs="+",
                         help="content caches (.h5)")
    add_renamed_argument(parser, "--style-caches", "--style", required=True, nargs="+", action="extend",
                         help="style caches (.h5); several references are pooled (see --refs-mode)")
    parser.add_argument("--refs-mode", choices=REFS_MODES, default="pool",
                        help="pool: every content takes all references; rotate: content i takes reference i mod R")
    outputs = parser.add_mutually_exclusive_group(required=True)
    outputs.add_argument("--out", nargs="+", help="one .png per content")
    outputs.add_argument("--settings", metavar="FILE", help=SETTINGS_HELP)
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


def settings_of(args) -> list[Setting]:
    """The --settings file's settings, or the one setting of the command line."""
    from ..core.layers import resolve_layers

    n = len(args.content_caches)
    defaults = dict(gamma=args.gamma, temperature=args.temperature, adain=not args.no_adain,
                    layers=resolve_layers(args.layers), refs_mode=args.refs_mode)
    if args.settings:
        if args.latent_out:
            raise InputError("--latent-out", "give latent_out inside the --settings file")
        return read_settings(args.settings, defaults, n)
    if len(args.out) != n:
        raise InputError("--out", f"{len(args.out)} outputs for {n} content caches")
    if args.latent_out and len(args.latent_out) != n:
        raise InputError("--latent-out", f"{len(args.latent_out)} outputs for {n} content caches")
    return [Setting(**defaults, out=args.out, latent_out=args.latent_out)]


def run(args):
    from ..storage.cache import check_compatible, open_caches
    from ..engines import load_engine
    from ..storage.fileio import check_names

    settings = settings_of(args)
    for setting in settings:
        check_names(setting.out)
        check_names(setting.latent_out or [], "--latent-out")

    # each setting's content caches: the command line's, or its own (a generation variant's), opened once
    opened = {}
    for paths in [args.content_caches] + [setting.content_caches for setting in settings if setting.content_caches]:
        if tuple(paths) not in opened:
            opened[tuple(paths)] = open_caches(paths, "content")
    contents_of = lambda setting: opened[tuple(setting.content_caches or args.content_caches)]  # noqa: E731
    styles = open_caches(args.style_caches, "style")
    for cache in [c for caches in opened.values() for c in caches] + styles:
        if args.expect_ddim_steps is not None and cache.steps != args.expect_ddim_steps:
            raise InputError(cache.path, f"cache has {cache.steps} inversion steps, "
                                         f"--expect-ddim-steps is {args.expect_ddim_steps}")
        if args.expect_resolution is not None and cache.resolution != args.expect_resolution:
            raise InputError(cache.path, f"cache resolution is {cache.resolution}, "
                                         f"--expect-resolution is {args.expect_resolution}")
    engine = load_engine(args.engine, args.model, args.device, args.dtype, layers=settings[0].layers)
    modes = []
    for setting in settings:  # every setting checked before the first one's work
        engine.use_layers(setting.layers)
        mode = check_compatible(contents_of(setting) + styles, model=engine.fingerprint,
                                prediction_type=engine.schedule.prediction_type, layers=setting.layers)
        if args.features == "stored" and mode != "stored":
            raise InputError("--features", "stored features were asked for, but some caches have none")
        modes.append(args.features if args.features != "auto" else mode)
    for number, (setting, mode) in enumerate(zip(settings, modes), 1):
        log.info("setting %d of %d: gamma %s, temperature %s, adain %s, %d layer(s), refs %s -> %s", number,
                 len(settings), setting.gamma, setting.temperature, setting.adain, len(setting.layers),
                 setting.refs_mode, Path(setting.out[0]).parent)
        engine.use_layers(setting.layers)
        contents = contents_of(setting)
        for content_rows, style_rows in reference_groups(len(contents), len(styles), setting.refs_mode):
            inject_images(engine, [contents[i] for i in content_rows], [styles[j] for j in style_rows],
                          [setting.out[i] for i in content_rows],
                          setting.latent_out and [setting.latent_out[i] for i in content_rows],
                          gamma=setting.gamma, temperature=setting.temperature, use_adain=setting.adain, mode=mode,
                          batch_size=args.batch_size, store=args.store)
