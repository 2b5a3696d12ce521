"""The parts' per-image values kept in the per-image store (storage/store.py), so that an evaluation
computes only the images it has not seen: a new sweep setting, style or prompt costs its own images,
and a killed evaluation loses only the chunk it was computing.

An entry is one value (a .npy file) of kind eval-<part>, keyed by the image's bytes (sha256), the
part's weights and their files' fingerprint, the device kind, the library versions, jstyleid's
version and, for the parts that compare against references (Hist, LPIPS), the references' bytes.
CLIP-R's candidate texts are entries too (kind eval-clip_r-text, keyed by the text). The set-level
parts, FID and CLIP-R, are arithmetic on these values, never on pixels again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Sequence

import numpy as np

from ..storage.inputs import sha256_file
from ..storage.store import Store

log = logging.getLogger(__name__)
CHUNK = 32  # values computed between two writes: what a kill can lose


class PartValues:
    """The values one part needs, from the store where finished, else computed and stored at once.
    The part's network is loaded once, and only if something has to be computed."""

    def __init__(self, metric, store_dir, device: str, made_with: dict):
        self.metric, self.device = metric, device
        self.store = Store(store_dir) if store_dir else None
        self.fields = dict(weights=metric.weights, fingerprint=metric.fingerprint, **made_with)
        self.values: dict[str, np.ndarray] = {}
        self.loaded = False
        self.hashes: dict[str, str] = {}

    def _sha(self, path) -> str:
        path = str(path)
        if path not in self.hashes:
            self.hashes[path] = sha256_file(path)
        return self.hashes[path]

    def _key(self, item, references: Sequence, text: bool) -> dict:
        if text:
            return dict(text=item)
        key = dict(image_sha256=self._sha(item))
        if self.metric.compares_references:
            key["references_sha256"] = [self._sha(r) for r in references]
        return key

    def _kind(self, text: bool) -> str:
        return f"eval-{self.metric.name}" + ("-text" if text else "")

    def fetch(self, groups: Sequence[tuple[Sequence, Sequence]], texts: Sequence[str] = ()) -> None:
        """Make the values of every image of `groups` ([(images, references)]) and of `texts` available."""
        from tqdm import tqdm

        todo = []  # (references, text, [(item, entry)]) still to compute, in the order given
        wanted = [(list(images), list(refs), False) for images, refs in groups]
        if texts:
            wanted.append((list(texts), [], True))
        seen, total = set(), {False: 0, True: 0}
        for items, refs, text in wanted:
            missing = []
            for item in items:
                name = self._name(item, refs, text)
                if name in seen:
                    continue
                seen.add(name)
                total[text] += 1
                entry = self.store.entry(self._kind(text), dict(self.fields, **self._key(item, refs, text)), ".npy") \
                    if self.store else None
                if entry is not None and entry.finished():
                    self.values[name] = np.load(entry.path)
                    with contextlib.suppress(OSError):  # its time is its last use, as gc reads it
                        os.utime(entry.path)
                else:
                    missing.append((item, entry))
            if missing:
                todo.append((refs, text, missing))
        for text, noun in ((False, "image(s)"), (True, "text(s)")):
            count = sum(len(m) for _, is_text, m in todo if is_text == text)
            if total[text]:  # the image line is the store's PLAN_LINE: the report counts what was reused
                log.info("evaluate %s: %d of %d %s from the store, %d to compute", self.metric.name,
                         total[text] - count, total[text], noun, count)
        count = sum(len(m) for _, _, m in todo)
        with tqdm(total=count, desc=f"evaluate {self.metric.name}", unit="image", disable=not count) as progress:
            for refs, text, missing in todo:
                for start in range(0, len(missing), CHUNK):
                    chunk = missing[start:start + CHUNK]
                    self._compute(chunk, refs, text)
                    progress.update(len(chunk))

    def _compute(self, chunk, refs, text: bool) -> None:
        if not self.loaded:
            self.metric.load(self.device)
            self.loaded = True
        items = [item for item, _ in chunk]
        values = self.metric.compute_texts(items) if text else self.metric.compute(items, refs)
        for (item, entry), value in zip(chunk, values):
            value = np.asarray(value)
            self.values[self._name(item, refs, text)] = value
            if entry is not None:
                with entry.writing() as tmp, open(tmp, "wb") as handle:
                    np.save(handle, value)

    def _name(self, item, refs, text: bool) -> str:
        """This job's name of a value: the texts, paths and references as given."""
        if text:
            return f"text:{item}"
        return f"{item}|{'|'.join(map(str, refs))}" if self.metric.compares_references else str(item)

    def image(self, path, references: Sequence = ()) -> np.ndarray:
        return self.values[self._name(path, list(references), False)]

    def text(self, text: str) -> np.ndarray:
        return self.values[self._name(text, [], True)]
