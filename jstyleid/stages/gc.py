"""`jstyleid gc`: bound and clean the per-image result store (jstyleid/storage/store.py)."""

from __future__ import annotations

import logging
import re

from ..errors import InputError

COMMAND = "gc"
HELP = "delete store entries no output links to: all, those unused for a while, or down to a size budget"
log = logging.getLogger(__name__)
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def add_arguments(parser):
    parser.add_argument("--store", required=True, metavar="DIR", help="the store folder (config key `store`)")
    parser.add_argument("--unreferenced", action="store_true",
                        help="delete every entry that no output links to (results of earlier settings)")
    parser.add_argument("--older-than", type=float, metavar="DAYS", help="delete unreferenced entries unused for DAYS")
    parser.add_argument("--max-size", metavar="SIZE",
                        help="delete unreferenced entries, least recently used first, until they hold at most "
                             "SIZE (e.g. 20G, 500M)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted, delete nothing")


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([KMGT]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        raise InputError("--max-size", f"{text!r} is not a size like 20G, 500M or 1048576")
    return int(float(match[1]) * UNITS[match[2].upper()])


def run(args):
    from pathlib import Path

    from ..storage.store import collect_garbage

    if not Path(args.store).is_dir():
        raise InputError(args.store, "store folder not found")
    if not (args.unreferenced or args.older_than is not None or args.max_size):
        raise InputError("gc", "say what to delete: --unreferenced, --older-than DAYS or --max-size SIZE")
    max_bytes = parse_size(args.max_size) if args.max_size else None
    doomed = collect_garbage(args.store, unreferenced=args.unreferenced, max_bytes=max_bytes,
                             older_than_s=None if args.older_than is None else args.older_than * 86400,
                             dry_run=args.dry_run)
    for entry in doomed:
        print(entry.path)
    log.info("%s %d entr%s, %.1f MiB", "would delete" if args.dry_run else "deleted", len(doomed),
             "y" if len(doomed) == 1 else "ies", sum(e.size for e in doomed) / (1 << 20))
