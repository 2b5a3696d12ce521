"""Candidates per prompt: K seeds, the best kept by a score of jstyleid.evaluation; the report shows the rest."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from jstyleid.pipelines.candidates import candidate_paths, keep_best
from jstyleid.cli import main
from jstyleid.evaluation.hist import hist_score

RES, STEPS = 64, 2


def _png(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (value, value, value)).save(path)
    return path


def test_keep_best_copies_the_highest_score_and_records_all(tmp_path):
    outs = [tmp_path / "content" / "Cat.png", tmp_path / "content" / "Dog.png"]
    brightness = {"Cat": [10, 200, 90], "Dog": [50, 50, 20]}  # Dog: a tie, the first of equals is kept
    for out in outs:
        for path, value in zip(candidate_paths(out, 3), brightness[out.stem]):
            _png(path, value)

    def brighter(candidates, references):
        assert references == ["ref.png"]
        return [float(np.asarray(Image.open(p)).mean()) for p in candidates]

    keep_best(outs, 3, brighter, ["ref.png"], "brightness")
    assert outs[0].read_bytes() == candidate_paths(outs[0], 3)[1].read_bytes()
    assert outs[1].read_bytes() == candidate_paths(outs[1], 3)[0].read_bytes()
    scores = json.loads((tmp_path / "content/candidates/scores.json").read_text())
    assert scores == {"metric": "brightness", "prompts": {"Cat": {"scores": [10.0, 200.0, 90.0], "kept": 1},
                                                          "Dog": {"scores": [50.0, 50.0, 20.0], "kept": 0}}}


def test_cli_keeps_the_best_hist_and_candidate_0_is_the_single_image(tiny_model, images, tmp_path):
    refs = [str(images["s0"]), str(images["s1"])]
    common = ["--model", str(tiny_model), "--device", "cpu", "--dtype", "float32", "--ddim-steps", str(STEPS),
              "--resolution", str(RES), "--prompt", "a cat", "a bird", "--store", ""]
    outs = [tmp_path / "k" / "a cat.png", tmp_path / "k" / "a bird.png"]
    assert main(["generate", *common, "--out", *map(str, outs), "--candidates", "3", "--references", *refs]) == 0
    single = [tmp_path / "one" / "a cat.png", tmp_path / "one" / "a bird.png"]
    assert main(["generate", *common, "--out", *map(str, single)]) == 0
    scores = json.loads((tmp_path / "k/candidates/scores.json").read_text())["prompts"]
    for out, alone in zip(outs, single):
        paths = candidate_paths(out, 3)
        assert paths[0].read_bytes() == alone.read_bytes()
        assert len({p.read_bytes() for p in paths}) == 3  # three seeds, three pictures
        expected = [hist_score([p], refs) for p in paths]
        assert scores[out.stem]["scores"] == pytest.approx(expected, abs=1e-12)
        assert out.read_bytes() == paths[int(np.argmax(expected))].read_bytes()


@pytest.mark.parametrize("extra, problem", [
    (["--candidates", "2", "--candidates-metric", "dino", "--metric-weights", "NOWHERE"], "dino cannot score here"),
    (["--candidates", "2"], "scores candidates against the style's images"),
    (["--candidates", "0"], "argument --candidates: 0 is below 1"),
])
def test_bad_candidate_settings_give_one_line_before_any_image(tiny_model, tmp_path, capsys, extra, problem):
    extra = [str(tmp_path / "no-weights") if a == "NOWHERE" else a for a in extra]
    if "dino" in extra:
        extra += ["--references", str(_png(tmp_path / "ref.png", 9))]
    code = main(["generate", "--model", str(tiny_model), "--device", "cpu", "--ddim-steps", str(STEPS), "--resolution",
                 str(RES), "--prompt", "a", "--out", str(tmp_path / "out" / "a.png"), *extra])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and problem in lines[-1] and not any("Traceback" in line for line in lines)
    assert not (tmp_path / "out").exists()


def test_report_shows_every_candidate_small_and_the_kept_one_outlined(tmp_path):
    from test_workflow import stylised_style

    prompts, images = stylised_style(tmp_path, "05", {"0": "Ring", "1": "Tree"})
    content = tmp_path / "results/05/content"
    outs = [_png(content / f"{name}.png", 1) for name in ("Ring", "Tree")]
    for out in outs:
        for k, path in enumerate(candidate_paths(out, 2)):
            _png(path, 100 * k)
    keep_best(outs, 2, lambda cands, refs: [1.0, 2.0, 0.5, 0.25], [], "hist")
    manifest = dict(styles=[dict(name="05", prompts=str(prompts), refs=[str(outs[0])], contents=list(map(str, outs)),
                                 outputs=str(images), loss=None, sweep=[],
                                 candidates=str(content / "candidates/scores.json"))],
                    benchmarks=[], config={})
    page = tmp_path / "results/report/index.html"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert main(["report", "--manifest", str(tmp_path / "manifest.json"), "--out", str(page)]) == 0
    html = page.with_name("style-05.html").read_text()
    assert "<h3>Candidates</h3>" in html and html.count('class="small"') == 4
    kept = [part.split('data-full="')[1].split('"')[0] for part in html.split('<figure class="candidate kept">')[1:]]
    assert kept == ["../05/content/candidates/1/Ring.png", "../05/content/candidates/0/Tree.png"]
    assert "<figcaption>2.000</figcaption>" in html
