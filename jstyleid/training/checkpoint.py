"""Resumable LoRA training: one checkpoint file per training folder, and SIGTERM turned into "checkpoint, then stop".

A checkpoint holds everything the next steps depend on: the trainer's state (LoRA weights, optimiser
moments and step count), the numpy Generator's bit_generator.state, the image-batch iterator's
pending order, the losses so far and the step reached. It carries the hash of every training setting
and input (`settings_hash`); a checkpoint with another hash is never resumed. The file is one .npz
(arrays, plus the JSON metadata as a 0-d string array), written through fileio.atomic_path, so a kill
while writing leaves the previous checkpoint intact.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import signal
import threading
from pathlib import Path

import numpy as np

from ..storage.fileio import atomic_path

CHECKPOINT_FILE = "checkpoint.npz"
log = logging.getLogger(__name__)


class TrainingInterrupted(Exception):
    """SIGTERM arrived: the state was checkpointed at `step` and training stopped."""

    def __init__(self, step: int):
        super().__init__(f"stopped by SIGTERM after step {step}; checkpoint written, rerun to resume")
        self.step = step


def settings_hash(settings: dict, files) -> str:
    """sha256 of the settings (JSON, sorted keys) and of the bytes of every input file, in order."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in files:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()


def save(path, settings: str, step: int, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write the checkpoint atomically; `arrays` are the trainer's state, `meta` JSON-able."""
    record = dict(meta, settings=settings, step=step)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, __meta__=np.array(json.dumps(record)), **arrays)
    log.info("checkpoint at step %d: %s", step, path)


def load(path, settings: str):
    """(step, arrays, meta) of the checkpoint at `path` if it exists and belongs to `settings`, else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            arrays = {key: data[key] for key in data.files if key != "__meta__"}
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring unreadable checkpoint %s (%s)", path, err)
        return None
    if meta.get("settings") != settings:
        log.warning("ignoring checkpoint %s: it was written with other training settings or inputs", path)
        return None
    return meta["step"], arrays, meta


@contextlib.contextmanager
def sigterm_flag():
    """Within the block, SIGTERM sets the returned event instead of killing the process (main thread only)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGTERM, previous)
