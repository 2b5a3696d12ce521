"""HDF5 inversion cache, format v1 (docs/cache-format.md): write under a temp name, read, validate;
and MemoryCache, an inversion held in memory for `jstyleid stylize`."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .. import __version__
from ..errors import InputError

FORMAT = "jstyleid.inversion/1"
ROLE_FEATURES = {"content": ("q",), "style": ("k", "v")}


class CacheWriter:
    """Writes one image's inversion step by step into `path`, a temporary name the caller renames when
    the writer closed without an exception (store.Results.writing), so the cache appears only complete."""

    def __init__(self, path, *, role: str, timesteps: Sequence[int], resolution: int, prediction_type: str,
                 model: str, source_sha256: str, layers: Sequence[str], feature_dtype: str = "float16"):
        import h5py

        self.path, self.role, self.layers = Path(path), role, list(layers)
        self.feature_dtype = np.dtype(feature_dtype)
        self.file = h5py.File(self.path, "w")
        self.file.attrs.update(format=FORMAT, role=role, timesteps=np.asarray(timesteps, dtype=np.int64),
                               resolution=int(resolution), prediction_type=prediction_type, model=model,
                               source_sha256=source_sha256, jstyleid_version=__version__,
                               features="stored" if self.layers else "none")
        self.n = len(timesteps)

    def write_step(self, i: int, latent: np.ndarray, features: dict[str, dict[str, np.ndarray]]) -> None:
        if "latents" not in self.file:
            self.file.create_dataset("latents", shape=(self.n, *latent.shape), dtype=np.float32)
        self.file["latents"][i] = latent
        for layer in self.layers:
            for name in ROLE_FEATURES[self.role]:
                value = features[layer][name]
                key = f"features/{layer}/{name}"
                if key not in self.file:
                    self.file.create_dataset(key, shape=(self.n, *value.shape), dtype=self.feature_dtype,
                                             chunks=(1, *value.shape))
                self.file[key][i] = value

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.file.close()


class InversionCache:
    """A validated, open cache file."""

    def __init__(self, path, expected_role: str | None = None):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(self.path, "cache file not found")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError:
            raise InputError(self.path, "not a readable HDF5 file (truncated or corrupt)") from None
        attrs = self.file.attrs
        fmt = attrs.get("format")
        if fmt != FORMAT:
            raise InputError(self.path, f"cache format is {fmt!r}, expected {FORMAT!r}")
        self.role = str(attrs["role"])
        if expected_role and self.role != expected_role:
            raise InputError(self.path, f"cache role is {self.role!r}, expected {expected_role!r}")
        self.timesteps = [int(t) for t in attrs["timesteps"]]
        self.resolution = int(attrs["resolution"])
        self.prediction_type = str(attrs["prediction_type"])
        self.model = str(attrs["model"])
        self.source_sha256 = str(attrs["source_sha256"])
        try:
            self._latents = self.file["latents"]
            shapes_ok = self._latents.shape[0] == len(self.timesteps)
            self.layers = sorted(self.file.get("features", {}).keys())
            for layer in self.layers:
                for name in ROLE_FEATURES[self.role]:
                    shapes_ok &= self.file[f"features/{layer}/{name}"].shape[0] == len(self.timesteps)
        except (KeyError, OSError):
            raise InputError(self.path, "cache is incomplete (missing or unreadable datasets)") from None
        if not shapes_ok:
            raise InputError(self.path, "cache datasets do not have one entry per timestep")

    @property
    def steps(self) -> int:
        return len(self.timesteps)

    def digest(self) -> str:
        """sha256 of what the cache was made from and its latents: a stand-in for the whole file (the
        features follow from the latents), cheap to compute, that a store key can name it by."""
        import hashlib

        digest = hashlib.sha256(repr(sorted((k, str(v)) for k, v in self.file.attrs.items())).encode())
        digest.update(np.ascontiguousarray(self._latents[()]).tobytes())
        for layer in self.layers:
            for name in ROLE_FEATURES[self.role]:
                digest.update(f"{layer}/{name}:{self.file[f'features/{layer}/{name}'].dtype}".encode())
        return digest.hexdigest()

    def latent(self, i: int) -> np.ndarray:
        return self._latents[i]

    def feature(self, layer: str, name: str, i: int) -> np.ndarray:
        return self.file[f"features/{layer}/{name}"][i]

    def close(self) -> None:
        self.file.close()


class MemoryCache:
    """An inversion held in memory, latents only: written like a CacheWriter, read like an open
    InversionCache (what inject's recompute mode reads), without a file. `path` names the source."""

    def __init__(self, path, *, role: str, timesteps: Sequence[int], resolution: int, prediction_type: str,
                 model: str, source_sha256: str, layers: Sequence[str] = (), feature_dtype: str = "float16"):
        if layers:
            raise ValueError("MemoryCache holds latents only; invert with features=False")
        self.path, self.role, self.timesteps = Path(path), role, [int(t) for t in timesteps]
        self.resolution, self.prediction_type, self.model = int(resolution), prediction_type, model
        self.source_sha256, self.layers = source_sha256, []
        self._latents: list[np.ndarray | None] = [None] * len(self.timesteps)

    def write_step(self, i: int, latent: np.ndarray, features: dict) -> None:
        self._latents[i] = np.array(latent, dtype=np.float32)  # a copy: the row is a view of the batch

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def digest(self) -> str:
        """sha256 of what the inversion was made from and its latents, as InversionCache.digest names a file."""
        import hashlib

        made_as = dict(role=self.role, timesteps=self.timesteps, resolution=self.resolution,
                       prediction_type=self.prediction_type, model=self.model, source_sha256=self.source_sha256)
        digest = hashlib.sha256(repr(sorted((k, str(v)) for k, v in made_as.items())).encode())
        for latent in self._latents:
            digest.update(np.ascontiguousarray(latent).tobytes())
        return digest.hexdigest()

    def latent(self, i: int) -> np.ndarray:
        return self._latents[i]


def open_caches(paths, role: str) -> list[InversionCache]:
    return [InversionCache(p, expected_role=role) for p in paths]


def check_compatible(caches: Sequence[InversionCache], *, model: str, prediction_type: str,
                     layers: Sequence[str]) -> str:
    """Refuse caches that do not fit the model or each other; return the feature mode they support."""
    first = caches[0]
    for cache in caches:
        if cache.model != model:
            raise InputError(cache.path, f"cache was made with model {cache.model}, this model is {model}")
        if cache.prediction_type != prediction_type:
            raise InputError(cache.path, f"cache prediction_type {cache.prediction_type!r} != model's "
                                         f"{prediction_type!r}")
        if cache.timesteps != first.timesteps:
            raise InputError(cache.path, f"cache has {cache.steps} steps, {first.path.name} has {first.steps}")
        if cache.resolution != first.resolution:
            raise InputError(cache.path, f"cache resolution {cache.resolution} != {first.path.name}'s "
                                         f"{first.resolution}")
    # Every cache holds the latents, so recomputing features always works; stored needs them all.
    return "stored" if all(set(layers) <= set(c.layers) for c in caches) else "recompute"


def check_made_as(path, expected: dict) -> None:
    """Refuse a stored cache whose attributes are not those its store key promises."""
    cache = InversionCache(path, expected_role=expected["role"])
    try:
        found = dict(role=cache.role, model=cache.model, timesteps=cache.timesteps, resolution=cache.resolution,
                     prediction_type=cache.prediction_type, layers=cache.layers, source_sha256=cache.source_sha256)
    finally:
        cache.close()
    for name, value in expected.items():
        if found[name] != value:
            raise InputError(path, f"stored cache has {name}={found[name]!r}, this job expects {value!r}")
