"""Small figures written atomically with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .fileio import atomic_path


def plot_loss(losses: Sequence[float], path, title: str = "LoRA training loss") -> None:
    """Per-step loss and its moving average (the raw curve is noisy: timesteps are random)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    losses = np.asarray(losses, dtype=np.float64)
    steps = np.arange(1, len(losses) + 1)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    try:
        ax.plot(steps, losses, lw=0.6, alpha=0.4, label="loss")
        window = max(1, min(50, len(losses) // 10))
        if window > 1:
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1:], smooth, lw=1.5, label=f"mean of {window}")
        ax.set(xlabel="step", ylabel="MSE", title=title)
        ax.legend()
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
