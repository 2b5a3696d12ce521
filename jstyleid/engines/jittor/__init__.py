"""Native Jittor engine: Stable Diffusion 2.x networks (UNet, VAE, CLIP text encoder)."""

import ctypes
import os
import signal
import threading


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
    # Jittor's core installs C signal handlers at import: a child process killed by any signal but
    # SIGTERM (a job killed by SLURM, a test's SIGKILL) makes it quick_exit(1) this whole process, and
    # Ctrl-C quick-exits past Python's cleanup (temporary files stay). Python keeps both.
    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGCHLD, signal.SIGINT)}
    import jittor

    if threading.current_thread() is threading.main_thread():
        for sig, handler in kept.items():
            if handler is not None:  # None: a handler not set from Python (Jittor's, on a later call)
                signal.signal(sig, handler)
    return jittor
