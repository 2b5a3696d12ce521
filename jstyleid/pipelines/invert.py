"""`jstyleid invert`: DDIM inversion of content or style images into HDF5 caches (spec, "Inversion")."""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor


log = logging.getLogger(__name__)


def invert_images(engine, images, outs, *, role, steps, resolution, features=True, feature_dtype="float16",
                  batch_size=4, store=None, writer=None):
    """Inverts images[k] into writer(outs[k], ...): by default a CacheWriter (an HDF5 file at outs[k]);
    cache.MemoryCache keeps it in memory (features=False). `store`: a result store folder
    (jstyleid/storage/store.py): finished caches are taken from it, new ones added. Returns the writers of the
    images computed, in order."""
    import numpy as np

    from ..storage.cache import ROLE_FEATURES, CacheWriter, check_made_as
    from ..storage.diskspace import cache_bytes
    from ..storage.fileio import ensure_room
    from ..storage.inputs import preprocess, sha256_file
    from ..core.schedule import timesteps
    from ..storage.store import Results, batches, compute_identity, plan
    from ..core.styleid import invert

    taus = timesteps(steps)
    engine.check_resolution(resolution)
    pixels = [preprocess(path, resolution) for path in images]  # validate every image before any work
    sources = [sha256_file(path) for path in images]
    layers = engine.injected_layers if features else ()
    made_as = dict(role=role, model=engine.fingerprint, timesteps=taus, resolution=resolution,
                   prediction_type=engine.schedule.prediction_type, layers=sorted(layers))
    setting = dict(made_as, compute=compute_identity(engine), feature_dtype=feature_dtype)
    results = Results(store, "invert", [dict(setting, source_sha256=s) for s in sources], outs, ".h5",
                      check=lambda path, i: check_made_as(path, dict(made_as, source_sha256=sources[i])))
    todo = plan("invert", results)
    cond = engine.text([""]) if todo else None
    record = ROLE_FEATURES[role] if features else ()
    size = cache_bytes(role=role, steps=steps, resolution=resolution, unet_config=engine.unet_config,
                       vae_scale_factor=engine.vae_scale_factor, layers=layers, features=features,
                       feature_itemsize=np.dtype(feature_dtype).itemsize)
    writer = writer or CacheWriter
    written = []
    for batch in batches(todo, batch_size):
        with contextlib.ExitStack() as stack:
            def target(i):  # a file goes through the store (or atomically into place); memory needs neither
                return stack.enter_context(results.writing(i)) if writer is CacheWriter else outs[i]

            targets = [target(i) for i in batch]
            if writer is CacheWriter:
                ensure_room(targets, size + size // 20)  # the estimate is within 3% of the files written
            writers = [stack.enter_context(writer(
                path, role=role, timesteps=taus, resolution=resolution,
                prediction_type=engine.schedule.prediction_type, model=engine.fingerprint,
                source_sha256=sources[i], layers=layers, feature_dtype=feature_dtype))
                for i, path in zip(batch, targets)]

            # Step i goes to disk while the U-Net runs step i + 1; one write in flight bounds host memory.
            background = stack.enter_context(ThreadPoolExecutor(1))  # exits, finishing its write, first
            writing = None

            def write(i, x, recorded):
                nonlocal writing
                latents = engine.numpy(x)
                host = {layer: {name: engine.numpy(t, feature_dtype) for name, t in named.items()}
                        for layer, named in recorded.items()}
                if writing:
                    writing.result()  # raises here if that write failed
                writing = background.submit(_write_rows, writers, i, latents, host)

            z = engine.encode(np.stack([pixels[i] for i in batch]))
            invert(engine, z, cond, taus, record, write)
            writing.result()
        written += writers
        log.info("inverted %d image(s) -> %s", len(writers), ", ".join(str(outs[i]) for i in batch))
    return written


def _write_rows(writers, i, latents, features):
    """Step i of a batch: row b of every array goes to writers[b]."""
    for row, writer in enumerate(writers):
        writer.write_step(i, latents[row], {layer: {name: a[row] for name, a in named.items()}
                                            for layer, named in features.items()})
