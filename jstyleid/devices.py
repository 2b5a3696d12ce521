"""Choosing the device. Snakemake does not assign GPUs: each job claims a free one with a lock file."""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile

log = logging.getLogger(__name__)
_held_locks = []  # kept open for the life of the process


def claim_cuda_device() -> str:
    """The first visible GPU no other jstyleid process holds (honours CUDA_VISIBLE_DEVICES)."""
    import torch

    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    ids = [v.strip() for v in visible.split(",") if v.strip()] or [str(i) for i in range(count)]
    lock_dir = os.environ.get("JSTYLEID_LOCK_DIR", tempfile.gettempdir())
    for index, physical in enumerate(ids[:count]):
        handle = open(os.path.join(lock_dir, f"jstyleid-gpu-{physical}.lock"), "w")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held_locks.append(handle)
        log.info("claimed GPU %s (cuda:%d)", physical, index)
        return f"cuda:{index}"
    log.warning("all %d visible GPUs are claimed; sharing cuda:0", count)
    return "cuda:0"


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return claim_cuda_device() if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype != "auto":
        return dtype
    return "float32" if device == "cpu" else "float16"
