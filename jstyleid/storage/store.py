"""Per-image result store: a finished image outlives the job that computed it (docs/reliability.md).

An entry is one file named by the sha256 of everything that determines it (the stage, its settings,
the model fingerprint, the hashes of its inputs, the jstyleid version), with a JSON sidecar holding
those fields. A stage looks each of its images up first, computes only the misses, stores every
result the moment it is finished and hard-links it (a copy across file systems) into its output.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..errors import InputError
from .fileio import atomic_path, write_json

log = logging.getLogger(__name__)
SIDECAR = ".json"


def add_store_argument(parser) -> None:
    parser.add_argument("--store", metavar="DIR",
                        help="per-image result store: reuse finished images from it, add new ones as they finish "
                             "(default: none, everything is computed)")


def compute_identity(engine) -> str:
    """Engine, precision and device kind: the same settings give other bits on another of these."""
    dtype = str(engine.dtype).removeprefix("torch.")
    return f"{engine.name}/{dtype}/{str(engine.device).split(':')[0]}"


class Store:
    def __init__(self, root):
        self.root = Path(root)

    def entry(self, kind: str, fields: dict, suffix: str) -> Entry:
        fields = dict(kind=kind, jstyleid=__version__, **fields)
        key = hashlib.sha256(json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        return Entry(self.root / kind / key[:2] / f"{key}{suffix}", fields)


@dataclass
class Entry:
    path: Path
    fields: dict

    @property
    def sidecar(self) -> Path:
        return self.path.with_suffix(SIDECAR)

    def finished(self) -> bool:
        """Whether the entry is there; one that does not hold what its key says is refused."""
        if not self.path.is_file():
            return False
        try:
            recorded = json.loads(self.sidecar.read_text(encoding="utf-8"))
            made_with, size = dict(recorded["fields"]), recorded["size"]
        except (OSError, ValueError, TypeError, KeyError):
            raise InputError(self.path, "store entry without a readable sidecar; delete it or run `jstyleid gc`") \
                from None
        for name, value in self.fields.items():
            if made_with.get(name) != value:
                raise InputError(self.path, f"store entry was made with {name}={made_with.get(name)!r}, "
                                            f"this job has {name}={value!r}; delete it or run `jstyleid gc`")
        if size != self.path.stat().st_size:
            raise InputError(self.path, f"store entry has {self.path.stat().st_size} bytes, its sidecar says "
                                        f"{size}; delete it or run `jstyleid gc`")
        return True

    @contextlib.contextmanager
    def writing(self):
        """Yield a temporary path; when the block succeeds it becomes the entry (sidecar first, read-only)."""
        with atomic_path(self.path) as tmp:
            yield tmp
            tmp.chmod(0o444)  # an edit in place of a linked output would change the entry too
            write_json(self.sidecar, dict(fields=self.fields, size=tmp.stat().st_size,
                                          created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))

    def link(self, out) -> None:
        """Put the entry at `out`: a hard link, or a copy where links cannot be made; its time is now."""
        with atomic_path(out) as tmp:
            try:
                os.link(self.path, tmp)
            except OSError:  # another file system, or links not allowed there
                shutil.copyfile(self.path, tmp)
        os.utime(out)  # Snakemake compares times: the output is as new as its job
        with contextlib.suppress(OSError):  # another user's entry (a shared store): its time stays
            os.utime(self.path)  # the entry's time is its last use (gc deletes the least recently used first)


class Results:
    """The outputs of one stage for its images: from the store where finished, else computed.

    Without a store every image is computed and written straight to its output, as before stores existed.
    """

    def __init__(self, store_dir, kind: str, fields: Sequence[dict], outs: Sequence, suffix: str, check=None):
        """`check(path, i)`: raises InputError when a finished entry does not hold what image i needs."""
        self.outs, self.check = [Path(o) for o in outs], check
        store = Store(store_dir) if store_dir else None
        self.entries = [store.entry(kind, f, suffix) for f in fields] if store else None

    def missing(self) -> list[int]:
        """Link every finished image into its output; return the indices still to compute."""
        if self.entries is None:
            return list(range(len(self.outs)))
        todo = []
        for i, (entry, out) in enumerate(zip(self.entries, self.outs)):
            if entry.finished():
                if self.check:
                    self.check(entry.path, i)
                entry.link(out)
            else:
                todo.append(i)
        return todo

    @contextlib.contextmanager
    def writing(self, i: int):
        """Yield the temporary path of result i; when the block succeeds it is stored and linked into place."""
        if self.entries is None:
            with atomic_path(self.outs[i]) as tmp:
                yield tmp
            return
        with self.entries[i].writing() as tmp:
            yield tmp
        self.entries[i].link(self.outs[i])


def plan(stage: str, *results: Results) -> list[int]:
    """Indices of the images any of `results` lacks (the others are linked); logs the count."""
    todo = sorted(set().union(*(r.missing() for r in results)))
    total = len(results[0].outs)
    log.info("%s: %d of %d image(s) from the store, %d to compute", stage, total - len(todo), total, len(todo))
    return todo


PLAN_LINE = re.compile(r"(\d+) of \d+ image\(s\) from the store, (\d+) to compute")


def reuse_counts(log_path) -> tuple[int, int] | None:
    """(images taken from the store, images computed) by the job whose log this is; None without a log."""
    try:
        found = PLAN_LINE.findall(Path(log_path).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return sum(int(reused) for reused, _ in found), sum(int(todo) for _, todo in found)


def batches(indices: Sequence[int], size: int) -> list[list[int]]:
    return [list(indices[start:start + size]) for start in range(0, len(indices), size)]


@dataclass
class Held:
    """One entry as gc sees it."""
    path: Path
    size: int
    last_use: float
    referenced: bool  # another hard link (an output) points at it

    def delete(self) -> None:
        self.path.unlink(missing_ok=True)
        self.path.with_suffix(SIDECAR).unlink(missing_ok=True)


def scan(root) -> tuple[list[Held], list[Path]]:
    """The store's entries, and its debris: sidecars without data, data without sidecar, old temporaries."""
    entries, debris = [], []
    day_ago = time.time() - 86400
    for path in sorted(Path(root).glob("*/*/*")):
        stat = path.stat()
        if path.name.startswith("."):  # a temporary of atomic_path: left by a killed job once a day old
            if stat.st_mtime < day_ago:
                debris.append(path)
        elif path.suffix == SIDECAR:
            if not any(p.suffix != SIDECAR for p in path.parent.glob(f"{path.stem}.*")):
                debris.append(path)
        elif not path.with_suffix(SIDECAR).is_file():
            debris.append(path)
        else:
            entries.append(Held(path, stat.st_size, stat.st_mtime, stat.st_nlink > 1))
    return entries, debris


def collect_garbage(root, *, unreferenced=False, older_than_s=None, max_bytes=None, dry_run=False) -> list[Held]:
    """Delete entries no output links to: all of them (`unreferenced`), those unused for `older_than_s`,
    and the least recently used until the unreferenced ones fit `max_bytes`. Referenced entries cost
    no space beyond their outputs and are kept. Returns what was (or, with dry_run, would be) deleted."""
    entries, debris = scan(root)
    free = sorted((e for e in entries if not e.referenced), key=lambda e: e.last_use)
    now = time.time()
    doomed = [e for e in free if unreferenced or (older_than_s is not None and now - e.last_use > older_than_s)]
    if max_bytes is not None:
        held = sum(e.size for e in free if e not in doomed)
        for entry in free:
            if held <= max_bytes:
                break
            if entry not in doomed:
                doomed.append(entry)
                held -= entry.size
    if not dry_run:
        for entry in doomed:
            entry.delete()
        for path in debris:
            path.unlink(missing_ok=True)
    return doomed
