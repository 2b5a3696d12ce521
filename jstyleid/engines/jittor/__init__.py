"""Native Jittor engine: Stable Diffusion 2.x networks (UNet, VAE, CLIP text encoder)."""

import ctypes
import os


def _cuda_usable() -> bool:
    """True when a CUDA driver is present and initialises (an nvcc alone is not enough)."""
    try:
        return ctypes.CDLL("libcuda.so.1").cuInit(0) == 0
    except OSError:
        return False


def import_jittor():
    """Import Jittor with the environment it reads at import time, and return the module.

    Jittor reads its settings from the environment only once, on first import:
    MKL is off by default (Jittor would download it), and an nvcc on PATH
    without a CUDA driver would make Jittor try to build CUDA kernels, so CUDA is
    switched off then. The compile cache goes under ``$JITTOR_HOME`` (default: ~),
    which is left to the caller; its sub-folder is named after ``$cache_name``, which
    Jittor otherwise takes from the git branch around its own install (here the
    checkout holding .venv), so every branch switch would recompile for minutes.
    """
    os.environ.setdefault("use_mkl", "0")
    os.environ.setdefault("cache_name", "default")
    if not _cuda_usable():
        os.environ["nvcc_path"] = ""
    import jittor

    return jittor
