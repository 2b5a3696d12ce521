"""Choosing the device. Snakemake does not assign GPUs: each job claims one with a lock file.

A job claims its GPU only when it is ready to compute (imports done, weights read into host memory),
and waits while every GPU is held by another jstyleid job. So with K model jobs in flight per GPU
(`--resources gpu=K` on a one-GPU box) the next jobs' start-up runs while the current one computes,
and the GPU still runs one job at a time.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time

log = logging.getLogger(__name__)
_claimed: dict = {}  # {"device": "cuda:i", "lock": open file}: one GPU per process, held until it exits


def visible_gpus() -> list[str]:
    """A stable name per visible GPU, its UUID: the same physical GPU gets the same lock file
    whatever CUDA_VISIBLE_DEVICES or a scheduler's cgroup renumbers it to."""
    import torch

    return [str(getattr(torch.cuda.get_device_properties(i), "uuid", i)) for i in range(torch.cuda.device_count())]


def claim_cuda_device(poll_s: float = 0.5) -> str:
    """The first visible GPU no other jstyleid process holds, waiting for one while all are held."""
    if _claimed:
        return _claimed["device"]
    gpus = visible_gpus()
    lock_dir = os.environ.get("JSTYLEID_LOCK_DIR", tempfile.gettempdir())
    waiting_since = None
    while True:
        for index, name in enumerate(gpus):
            handle = open(os.path.join(lock_dir, f"jstyleid-gpu-{name}.lock"), "w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            waited = f" after waiting {time.monotonic() - waiting_since:.1f} s" if waiting_since else ""
            log.info("claimed GPU %s (cuda:%d)%s", name, index, waited)
            _claimed.update(device=f"cuda:{index}", lock=handle)
            return _claimed["device"]
        if waiting_since is None:
            log.info("all %d visible GPUs are held by other jstyleid jobs; waiting for one", len(gpus))
            waiting_since = time.monotonic()
        time.sleep(poll_s)


def device_kind(device: str) -> str:
    """"cuda" or "cpu" (or another torch device type), without claiming anything."""
    if device != "auto":
        return device.split(":")[0]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str) -> str:
    """`auto`: a claimed GPU (see the module docstring), else the CPU; anything else as given."""
    if device != "auto":
        return device
    return claim_cuda_device() if device_kind(device) == "cuda" else "cpu"


def resolve_dtype(dtype: str, device: str) -> str:
    if dtype != "auto":
        return dtype
    return "float32" if device_kind(device) == "cpu" else "float16"
