"""Finding a metric's weights on this machine. Nothing is ever downloaded: hub ids are looked up
in the local Hugging Face cache only, torch hub checkpoints only where torch would read them."""

from __future__ import annotations

from pathlib import Path


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
