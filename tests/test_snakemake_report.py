"""Both reports of a real run (tiny model, two styles, a gamma sweep): Snakemake's `--report` zip holds
every output marked for it under its style and stage, and jstyleid's folder shows every picture in
headless Chromium, in place and copied elsewhere."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest
from chromium import probe_page
from conftest import SWEEP_GAMMAS as GAMMAS
from conftest import copy_run
from test_workflow import STYLES, snakemake

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(swept, tmp_path_factory):
    """A copy of the session's gamma-sweep run (tests/conftest.py): --report writes beside it."""
    return copy_run(swept, tmp_path_factory.mktemp("reports") / "wf")


def expected_categories(workdir: Path) -> dict:
    """{category: {subcategory: sorted files}} that the report() marks in rules/ give this run."""
    categories = {}
    for style in STYLES:
        names = sorted(p.name for p in (workdir / f"results/{style}/styleid").glob("*.png"))
        assert names, style
        categories[f"Style {style}"] = {
            "1 LoRA training": [f"results/{style}/lora/loss.csv", f"results/{style}/lora/loss.png"],
            "2 content images": [f"results/{style}/content/{n}" for n in names],
            "3 StyleID outputs": [f"results/{style}/styleid/{n}" for n in names],
            "4 sweep": [f"results/{style}/sweep/g{g}_t1.5/{n}" for g in GAMMAS for n in names],
        }
    categories["Overview"] = {"Other": ["results/report/index.html"]}
    return categories


def test_snakemake_report_holds_the_marked_outputs(run, tmp_path):
    snakemake(run, "--report", str(tmp_path / "report.zip"))
    with zipfile.ZipFile(tmp_path / "report.zip") as archive:
        page = archive.read("report/report.html").decode()
        names = archive.namelist()
        held = {}
        for name in names:
            if name.startswith("report/data/raw/"):
                held.setdefault(Path(name).name, []).append(archive.read(name))
    shown = json.loads(re.search(r"var categories = (\{.*?\});\n", page)[1])
    assert {cat: {sub: sorted(files) for sub, files in subs.items()} for cat, subs in shown.items()} == \
        expected_categories(run)
    for subs in expected_categories(run).values():
        for files in subs.values():
            for file in files:  # the very bytes of each marked output are in the zip
                assert (run / file).read_bytes() in held.get(Path(file).name, []), file
    # the jstyleid page travels with its thumbnails
    assert any(name.startswith("report/data/raw/") and "/img/" in name for name in names)
    assert "StyleID output &quot;Bird&quot; of style 01" in page and "gamma 0.75, temperature 1.5" in page
    assert "g0.25_t1.5 (gamma 0.25, temperature" in page


def test_workflow_report_shows_every_picture_in_chromium_in_place_and_copied(run, tmp_path):
    """Each style's page shows all its pictures; the index links every page and a strip of each."""
    index = run / "results/report/index.html"
    assert probe_page(index)["images"]  # the strips
    copy = Path(shutil.copytree(run / "results/report", tmp_path / "elsewhere/report"))
    for style in STYLES:  # references, loss curve; per prompt content + output, the sweep's content + outputs
        prompts = len(list((run / f"results/{style}/styleid").glob("*.png")))
        pictures = len(list((run / f"data/{style}/images").iterdir())) + 1 + prompts * (2 + 1 + len(GAMMAS))
        assert f'href="style-{style}.html"' in index.read_text()
        shown = probe_page(index.with_name(f"style-{style}.html"))
        assert len(shown["images"]) == pictures and all(img["width"] > 0 for img in shown["images"]), shown
        assert shown["full"] and all(shown["full"])
        moved = probe_page(copy / f"style-{style}.html")
        assert len(moved["images"]) == pictures and all(img["width"] > 0 for img in moved["images"]), moved
        assert not any(moved["full"])
