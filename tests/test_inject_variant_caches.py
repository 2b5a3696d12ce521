"""inject --settings with a setting's own content caches (a generation variant's, issue 19): one run, the
model loaded once, equal to a separate invocation on those caches; a bad list refused in one line."""

from __future__ import annotations

import json

from jstyleid.cli import main
from test_styleid import _invert


def test_a_settings_own_content_caches_equal_a_separate_invocation(tiny_model, torch_engine, images, tmp_path):
    own = _invert(torch_engine, [images["c0"], images["c1"]], tmp_path, "content", steps=3)
    variant = _invert(torch_engine, [images["c1"], images["s1"]], tmp_path, "content", tag="-variant", steps=3)
    styles = _invert(torch_engine, [images["s0"]], tmp_path, "style", steps=3)
    base = ["inject", "--model", str(tiny_model), "--device", "cpu", "--dtype", "float32",
            "--style-caches", *map(str, styles)]
    alone = [tmp_path / "alone" / f"p{i}.png" for i in range(2)]
    assert main(base + ["--content-caches", *map(str, variant), "--out", *map(str, alone)]) == 0
    outs = {name: [str(tmp_path / name / f"p{i}.png") for i in range(2)] for name in ("own", "variant")}
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps([dict(out=outs["own"]), dict(out=outs["variant"], content_caches=list(map(str, variant)))]))
    assert main(base + ["--content-caches", *map(str, own), "--settings", str(settings)]) == 0
    assert [open(p, "rb").read() for p in outs["variant"]] == [p.read_bytes() for p in alone]
    assert open(outs["own"][0], "rb").read() != alone[0].read_bytes()  # its own caches, not the command line's


def test_a_content_cache_list_of_another_length_is_refused_in_one_line(tiny_model, tmp_path, capsys):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps([dict(out=["a.png", "b.png"], content_caches=["v0.h5"])]))
    code = main(["inject", "--model", str(tiny_model), "--content-caches", "c0.h5", "c1.h5", "--style-caches", "s.h5",
                 "--settings", str(settings)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{settings} [0].content_caches" in err and "is not a list of 2 content caches" in err
