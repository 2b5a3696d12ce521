"""The two loops of ../shared/spec/styleid.md: DDIM inversion and StyleID injection.

Read side by side with the spec. Notation: tau_i timesteps (ascending), x_i inversion latents,
out the U-Net output, split(out, x, t) -> (x0, eps) and the DDIM move live in schedule.py.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ..engines.base import Engine, Injection


def invert(engine: Engine, z, cond, taus: Sequence[int], record: Sequence[str],
           on_step: Callable[[int, object, dict], None]) -> None:
    """Spec "Inversion": x_0 = z; record x_i and the features of unet(x_i, tau_i); step to tau_{i+1}."""
    x = z
    for i, tau in enumerate(tqdm(taus, desc="invert", leave=False)):
        out, features = engine.unet(x, tau, cond, record=record)
        on_step(i, x, features)
        if i < len(taus) - 1:  # the last evaluation only records features
            x = engine.schedule.move(out, x, tau, taus[i + 1])


def adain(content: np.ndarray, styles: Sequence[np.ndarray], eps: float = 1e-5) -> np.ndarray:
    """AdaIN(c, s) = (c - mean(c)) / (std(c) + 1e-5) * std(s) + mean(s), per channel over space.

    content (B, C, h, w); styles: R arrays (C, h, w), pooled by concatenation along the width axis.
    """
    s = np.concatenate([np.asarray(x, np.float64) for x in styles], axis=-1)
    c = np.asarray(content, np.float64)
    c_mean, c_std = c.mean(axis=(-2, -1), keepdims=True), c.std(axis=(-2, -1), keepdims=True)
    s_mean, s_std = s.mean(axis=(-2, -1), keepdims=True), s.std(axis=(-2, -1), keepdims=True)
    return ((c - c_mean) / (c_std + eps) * s_std + s_mean).astype(np.float32)


def inject(engine: Engine, contents, styles, cond, *, gamma: float, temperature: float, use_adain: bool = True,
           mode: str = "stored"):
    """Spec "Injection": DDIM sampling from the content's start latent with StyleID attention.

    contents, styles: open InversionCache objects (same timesteps). mode "stored" reads q / k, v from
    the caches; "recompute" evaluates the cached x_i of contents and styles in the same U-Net call.
    Returns the final latent (before decoding) as an engine tensor.
    """
    taus = contents[0].timesteps
    n, last = len(contents), len(taus) - 1
    start = np.stack([c.latent(last) for c in contents])
    x = engine.tensor(adain(start, [s.latent(last) for s in styles]) if use_adain else start)
    stored = _stored_features(engine, contents, styles, range(last, -1, -1)) if mode == "stored" else None
    for i in tqdm(range(last, -1, -1), desc="inject", leave=False):
        tau = taus[i]
        if mode == "stored":
            out, _ = engine.unet(x, tau, cond, inject=Injection(n, gamma, temperature, next(stored)))
        else:
            cached = np.stack([c.latent(i) for c in contents] + [s.latent(i) for s in styles])
            batch = engine.cat([x, engine.tensor(cached)])
            out, _ = engine.unet(batch, tau, cond, inject=Injection(n, gamma, temperature))
            out = out[:n]
        # x <- sqrt(a) x0 + sqrt(1-a) eps with a = abar[tau_{i-1}], or final_alpha_cumprod after tau_0
        x = engine.schedule.move(out, x, tau, taus[i - 1] if i > 0 else -1)
    return x


def _stored_features(engine: Engine, contents, styles, steps):
    """For each step i in turn, per injected layer: q_content[i] (B, tok, C) and k, v of all references
    joined along tokens. Step i's arrays are read from disk while the U-Net runs the step before."""

    def read(i):
        return {layer: (np.stack([c.feature(layer, "q", i) for c in contents]),
                        np.concatenate([s.feature(layer, "k", i) for s in styles])[None],
                        np.concatenate([s.feature(layer, "v", i) for s in styles])[None])
                for layer in engine.injected_layers}

    steps = list(steps)
    with ThreadPoolExecutor(1) as background:
        reading = background.submit(read, steps[0])
        for following in steps[1:] + [None]:
            arrays = reading.result()
            if following is not None:
                reading = background.submit(read, following)
            yield {layer: tuple(engine.tensor(a) for a in qkv) for layer, qkv in arrays.items()}
