"""`jstyleid inject`: StyleID style injection from inversion caches (spec, "Injection")."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from ..errors import InputError


log = logging.getLogger(__name__)
REFS_MODES = ("pool", "rotate")


@dataclass(frozen=True)
class Setting:
    """One injection of the content caches: its knobs and one output per content."""

    gamma: float
    temperature: float
    adain: bool
    layers: tuple[str, ...]
    refs_mode: str
    out: list[str]
    latent_out: list[str] | None = None
    content_caches: list[str] | None = None  # its own content caches (a generation variant's), else the job's


def read_settings(path, defaults: dict, n_contents: int) -> list[Setting]:
    """The settings of inject's --settings FILE: a JSON list of objects {"out": [one .png per content],
    and optionally "latent_out", "gamma", "temperature", "adain", "layers", "refs_mode", "content_caches"};
    a key left out takes `defaults` (the command line's value; content_caches: --content-caches). Refuses the first bad key naming the file and key."""
    from ..core.layers import resolve_layers

    try:
        with open(path, encoding="utf-8") as file:
            entries = json.load(file)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a readable settings file ({err})") from None
    if not isinstance(entries, list) or not entries:
        raise InputError(path, "must be a non-empty JSON list of settings objects")
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    names = lambda v: isinstance(v, list) and v and all(isinstance(x, str) for x in v)  # noqa: E731
    checks = dict(
        gamma=(number, "a number"), temperature=(number, "a number"), adain=(lambda v: isinstance(v, bool), "true or false"),
        layers=(lambda v: isinstance(v, str) or names(v), "a preset name or a non-empty list of module paths"),
        refs_mode=(lambda v: v in REFS_MODES, " or ".join(REFS_MODES)),
        out=(lambda v: names(v) and len(v) == n_contents, f"a list of {n_contents} file names (one per content cache)"),
        latent_out=(lambda v: names(v) and len(v) == n_contents, f"a list of {n_contents} .npy file names"),
        content_caches=(lambda v: names(v) and len(v) == n_contents, f"a list of {n_contents} content caches (.h5)"),
    )
    settings = []
    for i, entry in enumerate(entries):
        where = f"{path} [{i}]"
        if not isinstance(entry, dict):
            raise InputError(where, "a setting must be a JSON object")
        unknown = sorted(set(entry) - set(checks))
        if unknown:
            raise InputError(f"{where}.{unknown[0]}", f"unknown key (keys: {', '.join(checks)})")
        if "out" not in entry:
            raise InputError(f"{where}.out", "missing: one output .png per content cache")
        for key, value in entry.items():
            valid, expected = checks[key]
            if not valid(value):
                raise InputError(f"{where}.{key}", f"{json.dumps(value)[:80]} is not {expected}")
        values = {**defaults, **entry}
        settings.append(Setting(gamma=float(values["gamma"]), temperature=float(values["temperature"]),
                                adain=values["adain"], layers=resolve_layers(values["layers"]),
                                refs_mode=values["refs_mode"], out=values["out"], latent_out=values.get("latent_out"),
                                content_caches=values.get("content_caches")))
    return settings


def reference_groups(n_contents: int, n_styles: int, refs_mode: str) -> list[tuple[list[int], list[int]]]:
    """(content indices, style indices) stylized together. pool: all contents with all references;
    rotate: content i with reference i mod R alone (a group per reference, so batches stay shared)."""
    if refs_mode == "pool":
        return [(list(range(n_contents)), list(range(n_styles)))]
    return [(list(range(r, n_contents, n_styles)), [r]) for r in range(min(n_styles, n_contents))]


def inject_images(engine, contents, styles, outs, latent_outs=None, *, gamma, temperature, use_adain, mode, batch_size,
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
