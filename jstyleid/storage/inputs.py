"""User inputs: style folders, prompt.json and image decoding, each failure as one clear line."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from ..errors import InputError
from .fileio import NAME_MAX, clip_utf8

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
MIN_SIDE = 8
_FORBIDDEN = re.compile(r'[/\\:*?"<>|\x00-\x1f]')
# A name's stem keeps this many bytes of UTF-8 at most: NAME_MAX with room for the longest suffix
# jstyleid adds or finds (.png, .h5, .npy; a user's .jpeg or .tiff content image).
MAX_STEM_BYTES = NAME_MAX - 8


def safe_filename(prompt: str) -> str:
    """The prompt as written, with only the characters file systems forbid replaced by '_' (and a
    leading dot, which would hide the file). A name longer than MAX_STEM_BYTES is cut there and ends
    in '~' and 8 hex digits of the prompt's sha256, so that different long prompts stay apart."""
    name = _FORBIDDEN.sub("_", prompt).strip()
    name = "_" + name[1:] if name.startswith(".") else name
    name = name or "_"
    if len(name.encode("utf-8")) > MAX_STEM_BYTES:
        tag = "~" + hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8]
        head = clip_utf8(name, MAX_STEM_BYTES - len(tag)).rstrip()
        name = head + tag
    return name


def read_prompts(path) -> dict[str, str]:
    """prompt.json: a non-empty mapping of keys to non-empty prompt strings."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "prompt file is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise InputError(path, f"expected a mapping like {{\"0\": \"Ring\"}}, got {type(data).__name__}")
    if not data:
        raise InputError(path, "no prompts in the mapping")
    for key, value in data.items():
        if not isinstance(value, str) or not value.strip():
            raise InputError(path, f"prompt {key!r} must be a non-empty string, got {value!r}")
    seen = {}  # folded file name -> first key; case twins would be one file on macOS and Windows
    for key, value in data.items():
        name = safe_filename(value)
        twin = seen.setdefault(name.casefold(), key)
        if twin != key:
            same = "the same file name" if safe_filename(data[twin]) == name else "file names that differ only in case"
            raise InputError(path, f"prompts {twin!r} ({data[twin]!r}) and {key!r} ({value!r}) map to {same}")
    return dict(data)


def style_images(style_dir) -> list[Path]:
    """The reference images of a style folder (`XX/images/*`), sorted by name."""
    style_dir = Path(style_dir)
    images_dir = style_dir / "images"
    if not images_dir.is_dir():
        raise InputError(style_dir, "style folder has no images/ subfolder")
    images = _images_in(images_dir)
    if not images:
        raise InputError(images_dir, "style folder contains no images")
    return images


def image_files(entries, option: str) -> list[Path]:
    """Images named on the command line: files as given, folders as the images in them (sorted by
    name). Refuses a missing path, a folder without images and two images of the same name (stem)."""
    found = []
    for entry in map(Path, entries):
        if entry.is_dir():
            images = _images_in(entry)
            if not images:
                raise InputError(entry, f"{option}: folder contains no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            found += images
        elif entry.is_file():
            found.append(entry)
        else:
            raise InputError(entry, f"{option}: no such image or folder")
    seen = {}
    for path in found:
        if path.stem in seen:
            raise InputError(path, f"{option}: named {path.stem!r} like {seen[path.stem]} (given twice?); "
                                   "outputs are named after their images")
        seen[path.stem] = path
    return found


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _to_rgb(image):
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale: scale to 8 bits by value/257 (clipping would blow out the image).
        values = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8))
    if image.mode == "P":
        image = image.convert("RGBA")
    return image.convert("RGB")


def load_rgb(path):
    """Decode an image file to an RGB PIL image (EXIF orientation applied, 16-bit scaled down)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "image file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "image file is empty (0 bytes)")
    try:
        with Image.open(path) as image:
            image.load()
            rgb = _to_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise InputError(path, f"cannot decode image ({err})") from None
    if min(rgb.size) < MIN_SIDE:
        raise InputError(path, f"image is {rgb.size[0]}x{rgb.size[1]} px; each side must be at least {MIN_SIDE} px")
    return rgb


def preprocess(path, resolution: int) -> np.ndarray:
    """Spec preprocessing: centre-crop square, LANCZOS resize, scale to [-1, 1], channels first."""
    from PIL import Image

    image = load_rgb(path)
    w, h = image.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    image = image.crop((left, top, left + s, top + s)).resize((resolution, resolution), Image.LANCZOS)
    x = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return x.transpose(2, 0, 1).copy()


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_style(style_dir, decode: bool = False) -> dict[str, str]:
    """{file name: prompt} of a style folder whose prompt.json and images are usable; else InputError."""
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
