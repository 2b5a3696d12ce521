"""Validation strips of LoRA training: fixed prompts generated with the current LoRA every N steps.

Each prompt's initial noise depends only on (seed, prompt) (core.sampling.initial_noise), so the images of
one prompt differ across steps only by the LoRA: a strip per prompt shows overfitting (every prompt
turning into the training subject) at a glance. Images go to out_dir/validation/step{N}/{prompt}.png,
and validation/strips.json lists the prompts and steps done; the report draws one row per prompt.
"""

from __future__ import annotations

import html
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

FOLDER = "validation"
INDEX = "strips.json"


@dataclass(frozen=True)
class Validation:
    prompts: list
    every: int
    steps: int = 10
    guidance: float = 7.5
    seed: int = 0
    resolution: int = 64

    def settings(self) -> dict:
        return dict(prompts=list(self.prompts), every=self.every, steps=self.steps, guidance=self.guidance,
                    seed=self.seed, resolution=self.resolution)

    def reset(self, out_dir) -> None:
        """A fresh training run: drop the strips of an earlier one."""
        shutil.rmtree(Path(out_dir) / FOLDER, ignore_errors=True)

    def run(self, engine, step: int, out_dir) -> None:
        """Generate every prompt with the engine's current weights; record the step in strips.json."""
        import numpy as np
        from PIL import Image

        from ..storage.fileio import atomic_path, write_json
        from ..core.sampling import initial_noise, sample
        from ..storage.inputs import safe_filename
        from ..core.schedule import timesteps

        folder = Path(out_dir) / FOLDER
        channels = engine.unet_config["in_channels"]
        side = self.resolution // engine.vae_scale_factor
        noise = np.stack([initial_noise(self.seed, p, (channels, side, side)) for p in self.prompts])
        latents = sample(engine, list(self.prompts), noise, timesteps(self.steps), guidance=self.guidance)
        for prompt, image in zip(self.prompts, engine.decode(latents)):
            with atomic_path(folder / f"step{step:06d}" / f"{safe_filename(prompt)}.png") as tmp:
                Image.fromarray(image).save(tmp, format="PNG")
        index = folder / INDEX
        done = json.loads(index.read_text())["steps"] if index.is_file() else []
        write_json(index, dict(prompts=list(self.prompts), steps=sorted(set(done) | {step})))


def _record(out_dir, prompts=None) -> dict | None:
    """strips.json of a LoRA folder, its prompts cut to `prompts` (those of one style of a shared LoRA); None without it."""
    index = Path(out_dir) / FOLDER / INDEX
    if not index.is_file():
        return None
    record = json.loads(index.read_text(encoding="utf-8"))
    if prompts is not None:
        kept = set(prompts)
        record["prompts"] = [p for p in record["prompts"] if p in kept]
    return record


def _image(out_dir, step: int, prompt: str) -> Path:
    from ..storage.inputs import safe_filename

    return Path(out_dir) / FOLDER / f"step{step:06d}" / f"{safe_filename(prompt)}.png"


def step_images(out_dir, step: int, prompts=None) -> list[tuple[str, Path]]:
    """[(prompt, image)] of one validated step; empty when that step was not validated."""
    record = _record(out_dir, prompts)
    if record is None or step not in record["steps"]:
        return []
    return [(prompt, _image(out_dir, step, prompt)) for prompt in record["prompts"]]


def strips_html(out_dir, link, prompts=None) -> str:
    """The report's strips: one row per validation prompt (of `prompts`, default all), one column per step;
    `link(path)` -> img tag."""
    record = _record(out_dir, prompts)
    if record is None:
        return ""
    head = "".join(f"<th>step {step}</th>" for step in record["steps"])
    rows = []
    for prompt in record["prompts"]:
        cells = "".join(f"<td>{link(_image(out_dir, step, prompt))}</td>" for step in record["steps"])
        rows.append(f"<tr><td>{html.escape(prompt)}</td>{cells}</tr>")
    return (f"\n<h3>Validation during LoRA training</h3>\n<table><tr><th>Prompt</th>{head}</tr>\n"
            + "\n".join(rows) + "</table>")
