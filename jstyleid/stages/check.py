"""`jstyleid check`: a style folder's inputs, checked before any model runs.

The workflow runs the same check on every style at start (rules/common.smk) and leaves a refused
style out, so that the other styles still run; its one line appears in the run's summary.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import InputError

COMMAND = "check"
HELP = "check style folders (prompt.json, the file name of every prompt, the images) in one line each"
log = logging.getLogger(__name__)


def add_arguments(parser):
    parser.add_argument("--style-dir", nargs="+", required=True, help="style folders XX (XX/images/*, XX/prompt.json)")
    parser.add_argument("--decode", action="store_true", help="also decode every image (slower; finds corrupt files)")


def run(args):
    for folder in args.style_dir:
        names = check_style(folder, decode=args.decode)
        log.info("%s: %d prompts, file names %s", folder, len(names), ", ".join(sorted(names)))


def check_style(style_dir, decode: bool = False) -> dict[str, str]:
    """{file name: prompt} of a style folder whose prompt.json and images are usable; else InputError."""
    from ..storage.inputs import load_rgb, read_prompts, safe_filename, style_images

    style_dir = Path(style_dir)
    prompts = read_prompts(style_dir / "prompt.json")
    images = style_images(style_dir)
    stems = [p.stem for p in images]
    if len(set(stems)) < len(stems):
        raise InputError(style_dir / "images", "two images share a name (their caches would too)")
    for image in images:
        if decode:
            load_rgb(image)
        elif image.stat().st_size == 0:
            raise InputError(image, "image file is empty (0 bytes)")
    return {safe_filename(p): p for p in prompts.values()}
