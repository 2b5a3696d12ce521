"""Finding a metric's weights on this machine. Nothing is ever downloaded: hub ids are looked up
in the local Hugging Face cache only, torch hub checkpoints only where torch would read them, piq's
CLIP only where piq would read it."""

from __future__ import annotations

import os
from pathlib import Path

PIQ_CLIP_CACHE = "~/.cache/clip"  # hard-coded in piq 0.8.0's clip.load(); $HOME decides, not TORCH_HOME


def fingerprint(path) -> str:
    """A short hash of the names, sizes and modification times of a weights file or of a folder's files:
    per-image values made with other weights are never taken for this network's."""
    import hashlib

    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    listing = "".join(f"{p.relative_to(path) if path.is_dir() else p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}\n"
                      for p in files)
    return hashlib.sha256(listing.encode()).hexdigest()[:16]


class Unavailable(Exception):
    """A metric's weights (or library) are not on this machine; the message says what is missing."""


def hugging_face(spec: str) -> Path:
    """A model folder: `spec` itself when it is a folder, else the cached snapshot of hub id `spec`."""
    if Path(spec).is_dir():
        return Path(spec)
    if spec.count("/") != 1 or spec.startswith((".", "/")):
        raise Unavailable(f"{spec}: no such folder")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(spec, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        raise Unavailable(f"{spec}: not in the local Hugging Face cache (never downloaded)") from None


def torch_hub_checkpoint(file_name: str, hub_dir: str = "") -> Path:
    """`hub_dir`/checkpoints/`file_name` (hub_dir: torch.hub's own, $TORCH_HOME/hub, when empty):
    the file torch.hub.load_state_dict_from_url reads instead of downloading."""
    import torch

    path = Path(hub_dir or torch.hub.get_dir(), "checkpoints", file_name)
    if not path.is_file():
        raise Unavailable(f"{path}: no such checkpoint (never downloaded)")
    return path


def piq_clip_checkpoint() -> Path:
    """The CLIP RN50 TorchScript file piq's clip.load() reads: ~/.cache/clip/RN50.pt (the file name of
    piq's release URL). piq checks no checksum for its own URL, so the file there is used as it is;
    where it is missing piq would download it, hence Unavailable instead."""
    try:
        from piq.feature_extractors import clip
    except ImportError:
        raise Unavailable("clip_iqa: the piq package (piq==0.8.0) is not installed") from None
    path = Path(os.path.expanduser(PIQ_CLIP_CACHE), os.path.basename(clip.PIQ_CLIP_MODEL_PATH))
    if not path.is_file():
        raise Unavailable(f"{path}: piq's CLIP weights are not on this machine (never downloaded)")
    return path
