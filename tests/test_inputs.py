"""Image decoding, prompt.json and style folders: conversions that must work, errors that must be clear."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from jstyleid.cli import main
from jstyleid.errors import InputError
from jstyleid.storage.inputs import load_rgb, preprocess, read_prompts, safe_filename, style_images


def _rgb(seed=0, size=(24, 16)):
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def test_conversions(tmp_path):
    rgb = _rgb()
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])).save(tmp_path / "a.png")
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "a.png")), rgb)  # alpha dropped
    grey = rgb[..., 0]
    Image.fromarray(grey).save(tmp_path / "l.png")
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "l.png")), np.dstack([grey] * 3))
    Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=8).save(tmp_path / "p.png")
    assert load_rgb(tmp_path / "p.png").mode == "RGB"
    wide = (np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) * 170).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "16.png")
    expected = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(load_rgb(tmp_path / "16.png"))[..., 0], expected)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    assert load_rgb(tmp_path / "cmyk.jpg").mode == "RGB"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(rgb).save(tmp_path / "rot.jpg", exif=exif, quality=100)
    assert load_rgb(tmp_path / "rot.jpg").size == (16, 24)


def test_preprocess_crops_centre_and_scales(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, 10:30] = 255  # the centre square is white, the sides black
    Image.fromarray(rgb).save(tmp_path / "x.png")
    x = preprocess(tmp_path / "x.png", 16)
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    assert np.allclose(x, 1.0)


@pytest.mark.parametrize("content,problem", [
    (b"", "empty (0 bytes)"),
    (b"this is not an image", "cannot decode image"),
    (None, "each side must be at least 8 px"),
    ("truncated", "cannot decode image"),
])
def test_bad_images_give_one_line(tiny_model, tmp_path, capsys, content, problem):
    bad = tmp_path / "bad.png"
    if content is None:
        Image.fromarray(_rgb(size=(7, 20))).save(bad)
    elif content == "truncated":
        Image.fromarray(_rgb(size=(64, 64))).save(bad)
        bad.write_bytes(bad.read_bytes()[:100])
    else:
        bad.write_bytes(content)
    out = tmp_path / "out.h5"
    code = main(["invert", "--model", str(tiny_model), "--device", "cpu", "--images", str(bad), "--role", "content",
                 "--out", str(out), "--ddim-steps", "2", "--resolution", "64"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert lines[-1].startswith("jstyleid invert: error: ") and str(bad) in lines[-1] and problem in lines[-1]
    assert not any("Traceback" in line for line in lines)
    assert not list(tmp_path.glob("*.h5")) and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("text,problem", [
    (None, "missing"),
    ("{not json", "not valid JSON"),
    ('["Ring"]', "expected a mapping"),
    ("{}", "no prompts"),
    ('{"0": ""}', "non-empty string"),
    ('{"0": 3}', "non-empty string"),
    ('{"0": "a/b", "1": "a:b"}', "same file name"),
])
def test_bad_prompt_json(tmp_path, text, problem):
    path = tmp_path / "prompt.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(InputError, match=problem) as info:
        read_prompts(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_prompts_and_names(tmp_path):
    path = tmp_path / "prompt.json"
    path.write_text(json.dumps({"0": "Ring", "1": "Ice cream", "2": "A/B?"}))
    assert read_prompts(path) == {"0": "Ring", "1": "Ice cream", "2": "A/B?"}
    assert [safe_filename(p) for p in ("Ring", "Ice cream", "A/B?")] == ["Ring", "Ice cream", "A_B_"]


def test_style_folder_without_images(tmp_path):
    (tmp_path / "00" / "images").mkdir(parents=True)
    (tmp_path / "00" / "images" / "notes.txt").write_text("no pictures here")
    with pytest.raises(InputError, match="contains no images"):
        style_images(tmp_path / "00")
    with pytest.raises(InputError, match="no images/ subfolder"):
        style_images(tmp_path)
