"""Small figures written atomically with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..storage.fileio import atomic_path


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


LABEL_HEIGHT = 14  # px of the text band under each tile of a labelled grid


def labelled_grid(columns, rows, cells, path, side: int) -> None:
    """A table of pictures: a header row (columns: (label, image)), a header column (rows: (label,
    image)) and cells[r][c]; each tile side x side px with its label in a band beneath.
    Size: ((1 + len(columns)) * side, (1 + len(rows)) * (side + LABEL_HEIGHT))."""
    from PIL import Image, ImageDraw

    tile_h = side + LABEL_HEIGHT
    grid = Image.new("RGB", ((1 + len(columns)) * side, (1 + len(rows)) * tile_h), "white")
    draw = ImageDraw.Draw(grid)

    def put(image, label, col, row):
        if image is not None:
            grid.paste(image.convert("RGB").resize((side, side)), (col * side, row * tile_h))
        while label and draw.textlength(label) > side - 2:  # cut names that do not fit the tile
            label = label[:-2] + "~"
        draw.text((col * side + 1, row * tile_h + side + 1), label, fill="black")

    put(None, "content\\style", 0, 0)
    for c, (label, image) in enumerate(columns, start=1):
        put(image, label, c, 0)
    for r, (label, image) in enumerate(rows, start=1):
        put(image, label, 0, r)
        for c, image in enumerate(cells[r - 1], start=1):
            put(image, "", c, r)
    with atomic_path(path) as tmp:
        grid.save(tmp, format="PNG")
