"""`jstyleid inject`: StyleID style injection from inversion caches (spec, "Injection")."""

from __future__ import annotations

import logging

from ..errors import InputError
from ..storage.store import add_store_argument

COMMAND = "inject"
HELP = "stylize content caches with style caches (StyleID attention injection) and decode to PNG"
log = logging.getLogger(__name__)


def add_arguments(parser):
    from ..engines import add_engine_arguments

    add_engine_arguments(parser, layers=True)
    parser.add_argument("--content", nargs="+", required=True, help="content caches (.h5)")
    parser.add_argument("--style", nargs="+", required=True, action="extend",
                        help="style caches (.h5); several references are pooled (see --refs-mode)")
    parser.add_argument("--refs-mode", choices=("pool", "rotate"), default="pool",
                        help="pool: every content takes all references; rotate: content i takes reference i mod R")
    parser.add_argument("--out", nargs="+", required=True, help="one .png per content")
    add_injection_arguments(parser)
    parser.add_argument("--latent-out", nargs="+", help="one .npy per content: the final latent (4, h, w)")
    parser.add_argument("--features", choices=("auto", "stored", "recompute"), default="auto",
                        help="auto: stored when every cache holds features, else recompute")
    parser.add_argument("--steps", type=int, help="refuse caches of another number of inversion steps")
    parser.add_argument("--resolution", type=int, help="refuse caches of another resolution")
    parser.add_argument("--batch-size", type=int, default=4)
    add_store_argument(parser)


def add_injection_arguments(parser):
    """The options of the injection that `stylize` shares."""
    parser.add_argument("--gamma", type=float, default=0.75, help="query preservation")
    parser.add_argument("--temperature", type=float, default=1.5, help="attention temperature T")
    parser.add_argument("--no-adain", action="store_true", help="start from the content latent unchanged")


def run(args):
    if len(args.out) != len(args.content):
        raise InputError("--out", f"{len(args.out)} outputs for {len(args.content)} content caches")
    if args.latent_out and len(args.latent_out) != len(args.content):
        raise InputError("--latent-out", f"{len(args.latent_out)} outputs for {len(args.content)} content caches")
    from ..storage.cache import check_compatible, open_caches
    from ..engines import load_engine
    from ..storage.fileio import check_names

    check_names(args.out)
    check_names(args.latent_out or [], "--latent-out")

    contents = open_caches(args.content, "content")
    styles = open_caches(args.style, "style")
    engine = load_engine(args.engine, args.model, args.device, args.dtype, layers=args.layers)
    mode = check_compatible(contents + styles, model=engine.fingerprint,
                            prediction_type=engine.schedule.prediction_type, layers=engine.injected_layers)
    if args.features == "stored" and mode != "stored":
        raise InputError("--features", "stored features were asked for, but some caches have none")
    for cache in contents + styles:
        if args.steps is not None and cache.steps != args.steps:
            raise InputError(cache.path, f"cache has {cache.steps} inversion steps, --steps is {args.steps}")
        if args.resolution is not None and cache.resolution != args.resolution:
            raise InputError(cache.path, f"cache resolution is {cache.resolution}, --resolution is {args.resolution}")
    mode = args.features if args.features != "auto" else mode
    for content_rows, style_rows in reference_groups(len(contents), len(styles), args.refs_mode):
        stylize(engine, [contents[i] for i in content_rows], [styles[j] for j in style_rows],
                [args.out[i] for i in content_rows], args.latent_out and [args.latent_out[i] for i in content_rows],
                gamma=args.gamma, temperature=args.temperature, use_adain=not args.no_adain, mode=mode,
                batch_size=args.batch_size, store=args.store)


def reference_groups(n_contents: int, n_styles: int, refs_mode: str) -> list[tuple[list[int], list[int]]]:
    """(content indices, style indices) stylized together. pool: all contents with all references;
    rotate: content i with reference i mod R alone (a group per reference, so batches stay shared)."""
    if refs_mode == "pool":
        return [(list(range(n_contents)), list(range(n_styles)))]
    return [(list(range(r, n_contents, n_styles)), [r]) for r in range(min(n_styles, n_contents))]


def stylize(engine, contents, styles, outs, latent_outs=None, *, gamma, temperature, use_adain, mode, batch_size,
            store=None):
    """`store`: a result store folder (jstyleid/storage/store.py): finished images are taken from it, new ones added."""
    import numpy as np
    from PIL import Image

    from ..storage.store import Results, batches, compute_identity, plan
    from ..core.styleid import inject

    setting = dict(model=engine.fingerprint, compute=compute_identity(engine), styles=[c.digest() for c in styles],
                   gamma=gamma, temperature=temperature, adain=use_adain, mode=mode,
                   layers=list(engine.injected_layers))
    fields = [dict(setting, content=c.digest()) for c in contents]
    images = Results(store, "inject", fields, outs, ".png")
    latents_out = Results(store, "inject-latent", fields, latent_outs, ".npy") if latent_outs else None
    todo = plan("inject", *filter(None, (images, latents_out)))
    cond = engine.text([""]) if todo else None
    for batch in batches(todo, batch_size):
        latents = inject(engine, [contents[i] for i in batch], styles, cond, gamma=gamma, temperature=temperature,
                         use_adain=use_adain, mode=mode)
        for image, i in zip(engine.decode(latents), batch):
            with images.writing(i) as tmp:
                Image.fromarray(image).save(tmp, format="PNG")
        if latents_out:
            for latent, i in zip(engine.numpy(latents), batch):
                with latents_out.writing(i) as tmp:
                    with open(tmp, "wb") as handle:
                        np.save(handle, latent.astype(np.float32))
        log.info("stylized %s (%s features)", ", ".join(str(outs[i]) for i in batch), mode)
