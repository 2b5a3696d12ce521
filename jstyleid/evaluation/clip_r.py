"""CLIP-R: does CLIP find each image's own prompt among its top 5, as jdiff_checker's score_api
(get_clip_r_score with clip_r_api) computes it.

The scorer runs `openai/clip-vit-large-patch14` (transformers CLIPModel + CLIPProcessor) on each
generated image against candidate texts `list(set(words + [own]))`, where words are the lines of
clip_r_prompts.txt stripped and lower-cased, and `own` -- the image's prompt -- is its *file name* up
to the first dot, lower-cased (`name.split(".")[0].lower()`: "Mr. Bean.png" gives "mr"). The image
counts when `own` is among the 5 texts of highest softmax(logits_per_image); the value is
correct / total over all images of all styles (pooled, not a mean of per-style ratios).

Here the candidates are the own-prompts of every image of every style in the run plus, optionally,
the lines of a word-list file (`words`), deduplicated; with the challenge's clip_r_prompts.txt as
the word list and every prompt in it (as in the challenge), that is the scorer's candidate set.
The challenge's clip_r_prompts.txt lists the prompts of its styles, one a line; `words` may be such
a file or a styles folder (XX/prompt.json), whose prompts are then the list (style_prompts), and
`python -m jstyleid.evaluation clip-r-words STYLES_DIR... > clip_r_prompts.txt` writes that file.
The candidate order does not change the top 5 (except for exact ties); they are sorted here.
Images are preprocessed by the PIL processor (`backend="pil"`) after conversion to RGB, as the
scorer's transformers 4.47 did (see dino.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import InputError
from .metric import Metric, pooled_outputs
from .weights import fingerprint, hugging_face

NAME = "clip_r"
TOP_K = 5


def own_prompt(path) -> str:
    return Path(path).name.split(".")[0].lower()


def style_prompts(styles_dir) -> list[str]:
    """The distinct prompts of the styles XX/prompt.json in `styles_dir`, style by style."""
    from ..storage.inputs import read_prompts

    folders = sorted(p for p in Path(styles_dir).iterdir() if (p / "prompt.json").is_file()) \
        if Path(styles_dir).is_dir() else []
    if not folders:
        raise InputError(styles_dir, "no style folders XX/prompt.json to take CLIP-R words from")
    return list(dict.fromkeys(prompt for folder in folders for prompt in read_prompts(folder / "prompt.json").values()))


def read_words(path) -> list[str]:
    """The candidates a word list adds, stripped and lower-cased as the scorer reads its file; for a
    styles folder, its prompts."""
    if Path(path).is_dir():
        return [prompt.strip().lower() for prompt in style_prompts(path)]
    try:
        return [line.strip().lower() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except OSError as err:
        raise InputError(path, f"cannot read the CLIP-R word list ({err.strerror})") from None


class ClipR(Metric):
    name = NAME

    def __init__(self, spec: str, batch_size: int = 8):
        self.weights = spec
        self.folder = hugging_face(spec)
        self.fingerprint = fingerprint(self.folder)
        self.batch_size = batch_size
        self.candidates: list[str] = []
        self.text_values: dict[str, np.ndarray] = {}

    def set_candidates(self, images: Sequence, words_file: str = ""):
        words = read_words(words_file) if words_file else []
        self.candidates = sorted(set(words) | {own_prompt(p) for p in images})

    def load(self, device: str):
        self.device = device
        from transformers import CLIPModel, CLIPProcessor

        self.processor = CLIPProcessor.from_pretrained(self.folder, local_files_only=True, backend="pil")
        self.model = CLIPModel.from_pretrained(self.folder, local_files_only=True).to(self.device).eval()

    def compute(self, images, references=()):
        """Each image's CLIP embedding (CLIPModel's image_embeds before normalisation)."""
        return pooled_outputs(images, self.processor, self.model.get_image_features, self.batch_size, self.device)

    def compute_texts(self, texts):
        """Each candidate text's CLIP embedding (text_embeds before normalisation)."""
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(texts), 8 * self.batch_size):
                inputs = self.processor(text=list(texts[i:i + 8 * self.batch_size]), return_tensors="pt", padding=True)
                out += list(self.model.get_text_features(**inputs.to(self.device)).pooler_output.float().cpu().numpy())
        return out

    def value(self, values, reference_values, images) -> dict:
        """CLIPModel's logits_per_image are the cosines times exp(logit_scale) > 0, and softmax keeps their
        order: the top 5 of the cosines are the scorer's top 5."""
        import torch

        index = {text: i for i, text in enumerate(self.candidates)}
        texts = torch.from_numpy(np.stack([self.text_values[t] for t in self.candidates]))
        embeds = torch.from_numpy(np.stack(values))
        cosine = (embeds / embeds.norm(dim=-1, keepdim=True)) @ (texts / texts.norm(dim=-1, keepdim=True)).t()
        top = torch.topk(cosine, min(TOP_K, len(self.candidates)), dim=1).indices.tolist()
        hits = [float(index[own_prompt(p)] in row) for p, row in zip(images, top)]
        correct = int(sum(hits))
        return {"value": correct / len(images), "correct": correct, "total": len(images), "per_image": hits}

    def style(self, generated, references=()):
        self.text_values = dict(zip(self.candidates, self.compute_texts(self.candidates)))
        return super().style(generated, references)

    def overall(self, styles: Sequence[dict]) -> float:
        return sum(s["correct"] for s in styles) / sum(s["total"] for s in styles)
