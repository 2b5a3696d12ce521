"""Atomic output: every file is written under a temporary name and renamed when complete."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

from ..errors import DiskFull, InputError

# Longest file name, in bytes of UTF-8, that ext4, XFS, btrfs, APFS and NTFS all accept.
NAME_MAX = 255
_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}  # no room, over `ulimit -f`, over quota


def temporary_path(final: Path) -> Path:
    """The hidden name a file is written under: `.NAME.PID.tmpSUFFIX`, or, when that would pass
    NAME_MAX, a hash of NAME in its place (so every name that fits NAME_MAX can be written)."""
    tail = f".{os.getpid()}.tmp{final.suffix}"
    name = f".{final.name}{tail}"
    if len(name.encode("utf-8")) > NAME_MAX:
        name = f".{hashlib.sha256(final.name.encode('utf-8')).hexdigest()[:16]}{tail}"
    return final.with_name(name)


def clip_utf8(text: str, max_bytes: int) -> str:
    """The longest start of `text` whose UTF-8 takes at most max_bytes (cut on a character boundary)."""
    return text.encode("utf-8")[:max_bytes].decode("utf-8", "ignore")


def check_names(paths, option: str = "--out") -> None:
    """Refuse output paths whose file name no file system can hold, before any work is spent."""
    for path in paths:
        size = len(Path(path).name.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            raise InputError(option, f"file name of {Path(path).parent / Path(path).name[:40]}... is {size} "
                                     f"bytes of UTF-8; file systems allow {NAME_MAX}")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike):
    """Yield a temporary path beside `final`; rename it to `final` only if the block succeeds.

    A write that runs out of room raises DiskFull: `final` (an earlier version, if any) and every
    other finished file are untouched, and the partial temporary file is removed.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as err:
        if is_disk_full(err):
            raise DiskFull(final, err.strerror or str(err).split(" (")[0]) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def ensure_room(paths, size: int) -> None:
    """Refuse to start files of `size` bytes each that could not be completed. HDF5 cannot stop
    cleanly in the middle of a write (it crashes), so caches ask for their room first."""
    import resource

    paths = [Path(p) for p in paths]
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and size > limit:
        raise DiskFull(paths[0], f"each file needs {size} bytes, `ulimit -f` allows {limit}")
    free = shutil.disk_usage(paths[0].parent).free
    if len(paths) * size > free:
        raise DiskFull(paths[0], f"{len(paths)} file(s) need {len(paths) * size} bytes, {free} are free")


def is_disk_full(err: OSError) -> bool:
    # h5py reports the C library's errno inside its message only.
    return err.errno in _FULL or any(os.strerror(code) in str(err) for code in _FULL)


def read_manifest(path, kind: str) -> dict:
    """The JSON object of a manifest file (--manifest FILE of report and evaluate), or one line
    naming the file and what is wrong with it."""
    from ..errors import InputError

    try:
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(path, f"not a readable {kind} manifest file ({err})") from None
    if not isinstance(manifest, dict):
        raise InputError(path, f"not a {kind} manifest: a JSON object is expected")
    return manifest


def write_json(path, data) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
