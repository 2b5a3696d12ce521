"""The jstyleid HTML report is a self-contained folder: it shows thumbnails it holds itself, and still
does once copied elsewhere (checked in headless Chromium where there is one)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from chromium import probe_page
from PIL import Image

from jstyleid.reporting.report import THUMB_SIDE, asset

PROMPTS = {"0": "Red apple <b>", "1": "Tree"}


def picture(path: Path, size, mode="RGB", seed=0) -> str:
    rng = np.random.default_rng(seed)
    channels = len(mode)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8), mode).save(path)
    return str(path)


@pytest.fixture
def report(tmp_path):
    """A report built by `jstyleid report` from small outputs, a large JPEG and an RGBA style reference,
    a loss curve and a sweep; the results tree beside it as the workflow leaves it."""
    from jstyleid.cli import main
    from jstyleid.storage.inputs import safe_filename

    data, results = tmp_path / "data/05", tmp_path / "results/05"
    for folder in (data / "images", results / "content", results / "styleid", results / "sweep/g0.25_t1.5"):
        folder.mkdir(parents=True)
    (data / "prompt.json").write_text(json.dumps(PROMPTS))
    refs = [picture(data / "images/large.jpg", (600, 400)), picture(data / "images/alpha.png", (48, 48), "RGBA", 1)]
    contents = []
    for i, prompt in enumerate(PROMPTS.values()):
        name = safe_filename(prompt)
        contents.append(picture(results / "content" / f"{name}.png", (64, 64), seed=10 + i))
        picture(results / "styleid" / f"{name}.png", (64, 64), seed=20 + i)
        picture(results / "sweep/g0.25_t1.5" / f"{name}.png", (64, 64), seed=30 + i)
    loss = picture(results / "loss.png", (320, 240), seed=40)
    bench = tmp_path / "results/benchmarks/inject/05.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\th:m:s\tmax_rss\n12.5\t0:00:12\tNA\n")
    manifest = dict(styles=[dict(name="05", prompts=str(data / "prompt.json"), refs=refs, contents=contents,
                                 outputs=str(results / "styleid"), loss=loss,
                                 sweep=[dict(gamma=0.25, temperature=1.5, outputs=str(results / "sweep/g0.25_t1.5"))])],
                    benchmarks=[str(bench)], config={"model": "builtin:tiny"})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "results/report/index.html"
    assert main(["report", "--manifest", str(tmp_path / "manifest.json"), "--out", str(out)]) == 0
    return out


def sources(page: str) -> list[str]:
    return [unquote(src) for src in re.findall(r'<img [^>]*src="([^"]+)"', page)]


def style_page(report):
    return report.with_name("style-05.html")


def test_report_shows_only_pictures_inside_its_folder(report):
    index, page = report.read_text(), style_page(report).read_text()
    # 2 references, per prompt: content, output, sweep's content and output; the loss curve
    assert len(sources(page)) == 2 + 2 * 4 + 1
    assert len(sources(index)) == 2  # the style's strip: its outputs
    for src in sources(index) + sources(page):
        assert src.startswith("img/") and (report.parent / src).is_file(), src
    assert "http" not in index + page and "Red apple &lt;b&gt;" in page
    assert '<a href="style-05.html">Style 05</a>' in index and '<a href="index.html">All styles</a>' in page
    assert "<td>inject</td><td class=num>1</td><td class=num>12.5</td>" in index


def test_thumbnails_are_small_and_exact_where_the_source_is_small(report):
    folder = report.parent / "img"
    large = [p for p in folder.iterdir() if p.name.startswith("large-")]
    assert len(large) == 1 and large[0].suffix == ".jpg"
    with Image.open(large[0]) as thumb:
        assert thumb.size == (THUMB_SIDE, round(THUMB_SIDE * 400 / 600))
    (alpha,) = [p for p in folder.iterdir() if p.name.startswith("alpha-")]
    source = report.parents[2] / "data/05/images/alpha.png"
    assert np.array_equal(np.asarray(Image.open(alpha)), np.asarray(Image.open(source)))  # RGBA, pixels kept
    (loss,) = [p for p in folder.iterdir() if p.name.startswith("loss-")]
    assert loss.read_bytes() == (report.parents[1] / "05/loss.png").read_bytes()  # shown at full size


def test_full_size_links_lead_to_the_sources_in_place(report):
    links = [unquote(href) for href in re.findall(r'<a data-full="([^"]+)"', style_page(report).read_text())]
    assert len(links) == 2 + 2 * 4
    assert all(link.startswith("../") and (report.parent / link).is_file() for link in links)


def test_asset_names_differ_for_same_named_sources(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    first, second = picture(a / "x.png", (8, 8)), picture(b / "x.png", (8, 8), seed=1)
    base = tmp_path / "report"
    assert asset(first, base) != asset(second, base)
    assert asset(first, base) == asset(first, base)


def test_asset_refuses_a_file_that_is_not_an_image(tmp_path):
    from jstyleid.errors import InputError

    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(InputError, match="notes.png: not a readable image"):
        asset(tmp_path / "notes.png", tmp_path / "report")
    assert not (tmp_path / "report/img").exists() or not any((tmp_path / "report/img").iterdir())


def test_every_picture_loads_in_chromium_in_place_and_copied(report, tmp_path):
    counts = {"index.html": (2, 2), "style-05.html": (11, 10)}  # pictures, full-size links per page
    for name, (pictures, links) in counts.items():
        shown = probe_page(report.with_name(name))
        assert len(shown["images"]) == pictures and all(img["width"] > 0 for img in shown["images"]), shown["images"]
        assert len(shown["full"]) == links and all(shown["full"])  # full-size pictures beside the report
    elsewhere = Path(shutil.copytree(report.parent, tmp_path / "shared/report"))
    shutil.rmtree(report.parents[2] / "data")  # nothing left for a stray relative path to find
    for name, (pictures, links) in counts.items():
        moved = probe_page(elsewhere / name)
        assert len(moved["images"]) == pictures and all(img["width"] > 0 for img in moved["images"]), moved["images"]
        assert moved["full"] == [False] * links  # no full-size picture beside the copy: links stay inactive



def test_a_missing_picture_is_refused_and_no_page_written(report, capsys):
    from jstyleid.cli import main

    (report.parents[1] / "05/styleid/Tree.png").unlink()
    out = report.parents[1] / "again/index.html"
    assert main(["report", "--manifest", str(report.parents[2] / "manifest.json"), "--out", str(out)]) == 2
    assert "05/styleid/Tree.png: file listed in the report manifest does not exist" in capsys.readouterr().err
    assert not out.exists()
