"""`jstyleid inject`: StyleID style injection from inversion caches (spec, "Injection")."""

from __future__ import annotations

import logging


log = logging.getLogger(__name__)


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
