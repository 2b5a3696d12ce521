"""Finding a model (diffusers folder, cached hub id, builtin preset) and fingerprinting its weights."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import InputError

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
BUILTIN_PREFIX = "builtin:"


def cache_dir() -> Path:
    return Path(os.environ.get("JSTYLEID_CACHE", Path.home() / ".cache" / "jstyleid"))


def resolve_model(spec: str) -> Path:
    """A diffusers model folder for `spec`: a path, `builtin:<preset>`, or a hub id already cached.

    Never downloads: the hub is only consulted offline (local_files_only).
    """
    if spec.startswith(BUILTIN_PREFIX):
        from .presets import PRESETS, make_model

        preset = spec[len(BUILTIN_PREFIX):]
        if preset not in PRESETS:
            raise InputError(spec, f"unknown builtin model; choose one of {sorted(PRESETS)}")
        folder = cache_dir() / "models" / preset
        if not (folder / "model_index.json").is_file():
            make_model(preset, folder)
        return folder
    path = Path(spec)
    if path.exists():
        if not (path / "model_index.json").is_file():
            raise InputError(path, "not a diffusers model folder (no model_index.json)")
        missing = [c for c in COMPONENTS if not (path / c).is_dir()]
        if missing:
            raise InputError(path, f"model folder lacks {', '.join(missing)}/")
        return path
    if spec.count("/") == 1 and not spec.startswith((".", "/")):
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(spec, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            raise InputError(spec, "hub id is not in the local Hugging Face cache and jstyleid never downloads; "
                                   "copy the weights to a folder (diffusers layout) and pass its path, or fill "
                                   "the cache with `huggingface-cli download` on a machine with network access") from None
    raise InputError(spec, "model not found: give a diffusers folder, a cached hub id (owner/name) or builtin:tiny")


def read_config(folder: Path, component: str) -> dict:
    name = "scheduler_config.json" if component == "scheduler" else "config.json"
    path = folder / component / name
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(path, f"cannot read model config ({err})") from None


def _file_digest(path: Path, memo: dict) -> str:
    """sha256 of a file, remembered by (path, size, mtime) so large weights are hashed once."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    if key not in memo:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(8 << 20), b""):
                digest.update(block)
        memo[key] = digest.hexdigest()
    return memo[key]


def fingerprint(folder: Path, extra: str = "") -> str:
    """A short hash of the configs and weights of the components inversion and injection use."""
    memo_path = cache_dir() / "fingerprints.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, json.JSONDecodeError):
        memo = {}
    before = dict(memo)
    total = hashlib.sha256(extra.encode())
    for component in COMPONENTS:
        for path in sorted((folder / component).glob("*")):
            if path.is_file() and path.suffix in (".json", ".txt", ".safetensors", ".bin"):
                total.update(f"{component}/{path.name}:{_file_digest(path, memo)}\n".encode())
    if memo != before:
        from ..storage.fileio import write_json

        try:
            write_json(memo_path, memo)
        except OSError:
            pass  # a read-only home only costs re-hashing next time
    return total.hexdigest()[:16]
