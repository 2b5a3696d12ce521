"""The lists of a job in a file: `--args-file FILE` of every stage, `--manifest FILE` of report and
evaluate (issue 17: no command line grows with the data)."""

from __future__ import annotations

import json

import pytest

from jstyleid.cli import expand_args_files, main


def test_an_args_file_stands_for_its_options_where_it_is_given(tmp_path):
    args = tmp_path / "inject.json"
    args.write_text(json.dumps({"--content-caches": ["a b.h5", "Café.h5"], "--gamma": 0.5}))  # as the workflow: ASCII JSON
    assert expand_args_files(["inject", "--model", "m", "--args-file", str(args), "--out", "x.png"]) == [
        "inject", "--model", "m", "--content-caches", "a b.h5", "Café.h5", "--gamma", "0.5", "--out", "x.png"]


@pytest.mark.parametrize("text, problem", [
    (None, "not a readable arguments file"),
    ("not json", "not a readable arguments file"),
    ('["--content", "a.h5"]', 'not a JSON object of {"--option"'),
    ('{"content": ["a.h5"]}', 'not a JSON object of {"--option"'),
])
def test_a_bad_args_file_is_one_line_naming_it(tmp_path, capsys, text, problem):
    args = tmp_path / "args.json"
    if text is not None:
        args.write_text(text)
    assert main(["invert", "--args-file", str(args)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"jstyleid: error: {args}: ") and problem in line


def test_an_args_file_gets_the_stages_own_checks(tmp_path, capsys):
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"--images": ["a.png", "b.png"], "--out": ["a.h5"]}))
    assert main(["invert", "--model", "builtin:tiny", "--role", "style", "--args-file", str(args)]) == 2
    assert "--out: 1 outputs for 2 images" in capsys.readouterr().err


@pytest.mark.parametrize("stage", ["report", "evaluate"])
@pytest.mark.parametrize("text, problem", [
    (None, "not a readable"),
    ("{not json", "not a readable"),
    ("[1, 2]", "a JSON object is expected"),
])
def test_a_manifest_that_is_not_a_readable_file_is_one_line(tmp_path, capsys, stage, text, problem):
    manifest = tmp_path / "manifest.json"
    if text is not None:
        manifest.write_text(text)
    assert main([stage, "--manifest", str(manifest), "--out", str(tmp_path / "out")]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"jstyleid {stage}: error: {manifest}: ") and problem in line


def test_json_text_is_no_longer_a_manifest(tmp_path, capsys):
    assert main(["report", "--manifest", '{"styles": []}', "--out", str(tmp_path / "index.html")]) == 2
    assert "not a readable report manifest file" in capsys.readouterr().err
