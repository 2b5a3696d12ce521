"""The CLI grammar (README, "Command-line options"): the table matches the parser, old spellings
still work with a warning, counts are refused at parse time, renamed config keys are refused by name."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jstyleid.cli import build_parser, main
from jstyleid.workflow import refuse_old_keys
from jstyleid.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def stage_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def parser_options() -> set[tuple[str, str]]:
    """(option, stage) of every documented option: hidden ones are the deprecated aliases."""
    return {(action.option_strings[0], stage) for stage, parser in stage_parsers().items()
            for action in parser._actions
            if action.option_strings and action.help is not argparse.SUPPRESS and action.dest != "help"}


def readme_options() -> set[tuple[str, str]]:
    section = (ROOT / "README.md").read_text().split("### Command-line options", 1)[1]
    rows = re.findall(r"^\| `(--[\w-]+)` \|.*\| ([\w\-, ]+) \|$", section, flags=re.M)
    return {(option, stage.strip()) for option, stages in rows for stage in stages.split(",")}


def test_readme_table_lists_exactly_the_parsers_options():
    documented, defined = readme_options(), parser_options()
    assert len(defined) > 50
    assert not defined - documented, f"not in the README table: {sorted(defined - documented)}"
    assert not documented - defined, f"in the README table but not in the parser: {sorted(documented - defined)}"


# (stage, old spelling, new spelling, the argument both take); each pair must parse to the same namespace.
REQUIRED = {
    "invert": ["--model", "m", "--role", "content", "--out", "o.h5"],
    "inject": ["--model", "m", "--out", "o.png"],
    "stylize": ["--model", "m"],
    "submission": ["--prompts", "p.json"],
    "make-model": [],
    "train-lora": ["--model", "m", "--style-dir", "s", "--out-dir", "o"],
    "generate": ["--model", "m", "--prompt", "p", "--out", "o.png"],
    "class-images": ["--model", "m", "--prompt", "p", "--out-dir", "o"],
}
FILLERS = {  # what a required option needs when the pair under test is another one
    "inject": {"--content-caches": ["c.h5"], "--style-caches": ["s.h5"]},
    "invert": {"--images": ["i.png"]},
    "stylize": {"--content-images": ["c"], "--style-images": ["s"], "--out-dir": ["o"]},
    "submission": {"--image-dirs": ["d"], "--out-dir": ["o"]},
    "make-model": {"--out-dir": ["o"]},
}
ALIASES = [
    ("invert", "--image", "--images", ["a.png", "b.png"]),
    ("invert", "--steps", "--ddim-steps", ["7"]),
    ("inject", "--content", "--content-caches", ["c.h5"]),
    ("inject", "--style", "--style-caches", ["s0.h5", "s1.h5"]),
    ("inject", "--steps", "--expect-ddim-steps", ["7"]),
    ("inject", "--resolution", "--expect-resolution", ["64"]),
    ("stylize", "--content", "--content-images", ["c/"]),
    ("stylize", "--style", "--style-images", ["s.png"]),
    ("stylize", "--out", "--out-dir", ["o"]),
    ("stylize", "--latent-out", "--latent-out-dir", ["lat"]),
    ("stylize", "--steps", "--ddim-steps", ["7"]),
    ("submission", "--images", "--image-dirs", ["d"]),
    ("submission", "--out", "--out-dir", ["sub"]),
    ("make-model", "--out", "--out-dir", ["models/tiny"]),
    ("train-lora", "--steps", "--train-steps", ["7"]),
    ("train-lora", "--validation-steps", "--validation-ddim-steps", ["7"]),
    ("generate", "--steps", "--ddim-steps", ["7"]),
    ("class-images", "--steps", "--ddim-steps", ["7"]),
]


def argv(stage, option, values, standing_for=None):
    """A full command line of `stage` with `option values` (an alias `standing_for` a new option)."""
    fill = [part for name, given in FILLERS.get(stage, {}).items() if name not in (option, standing_for)
            for part in (name, *given)]
    return [stage, *REQUIRED[stage], *fill, option, *values]


@pytest.mark.parametrize("stage, old, new, values", ALIASES)
def test_an_old_spelling_warns_and_parses_as_the_new_one(stage, old, new, values, capsys):
    with_new = build_parser().parse_args(argv(stage, new, values))
    assert "deprecated" not in capsys.readouterr().err
    with_old = build_parser().parse_args(argv(stage, old, values, standing_for=new))
    [line] = capsys.readouterr().err.splitlines()
    assert line == f"jstyleid: warning: {old} is deprecated and goes in the next release; use {new}"
    assert vars(with_old) == vars(with_new)


def test_no_features_is_features_recompute(capsys):
    common = ["invert", *REQUIRED["invert"], "--images", "a.png"]
    assert build_parser().parse_args(common).features == "stored"
    assert build_parser().parse_args([*common, "--no-features"]).features == "recompute"
    assert "use --features recompute" in capsys.readouterr().err


def test_every_old_spelling_is_a_hidden_alias_tested_here():
    hidden = {(stage, name) for stage, parser in stage_parsers().items() for action in parser._actions
              if action.help is argparse.SUPPRESS for name in action.option_strings}
    assert hidden == {(stage, old) for stage, old, _, _ in ALIASES} | {("invert", "--no-features")}


def test_a_required_option_is_named_by_its_new_spelling(capsys):
    assert main(["invert", *REQUIRED["invert"]]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "--images" in line and "--image " not in line


COUNTED = [(stage, option) for stage, parser in stage_parsers().items() for action in parser._actions
           for option in action.option_strings[:1]
           if option in ("--batch-size", "--ddim-steps", "--train-steps")]


def test_every_model_stage_has_a_batch_size():
    assert {stage for stage, option in COUNTED if option == "--batch-size"} == {
        "class-images", "generate", "inject", "invert", "stylize", "train-lora"}


@pytest.mark.parametrize("value", ["0", "-1"])
@pytest.mark.parametrize("stage, option", COUNTED)
def test_a_count_below_one_is_refused_in_one_line_at_parse_time(stage, option, value, capsys):
    # No model exists: only a parse-time check can answer before a load would fail.
    assert main(argv(stage, option, [value])) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"jstyleid {stage}: error: argument {option}: {value} is below ")


@pytest.mark.parametrize("value, problem", [("1", "1 is below 2"), ("1000", "1000 is above 999"), ("x", "'x' is not")])
@pytest.mark.parametrize("stage", sorted({stage for stage, option in COUNTED if option == "--ddim-steps"}))
def test_ddim_steps_outside_the_schedules_range_are_refused_at_parse_time(stage, value, problem, capsys):
    assert main(argv(stage, "--ddim-steps", [value])) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert f"argument --ddim-steps: {problem}" in line


def test_the_installed_command_refuses_batch_size_0_in_one_line():
    done = subprocess.run([sys.executable, "-m", "jstyleid.cli", "inject", "--model", "nowhere", "--content-caches",
                           "c.h5", "--style-caches", "s.h5", "--out", "o.png", "--batch-size", "0"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.splitlines() == [
        "jstyleid inject: error: argument --batch-size: 0 is below 1 (see jstyleid inject --help)"]


@pytest.mark.parametrize("config, message", [
    ({"evaluate": True}, "config: key `evaluate` is gone; write `evaluation: {enabled: true|false}`"),
    ({"select": None}, "config: `select: null` is spelled `select: none` now (as on the CLI)"),
    ({"styles": {"02": {"select": None}}}, "config styles: 02: `select: null` is spelled `select: none` now"),
    ({"styles": {"02": {"evaluate": False}}}, "config styles: 02: key `evaluate` is gone"),
])
def test_renamed_config_keys_are_refused_naming_the_new_one(config, message):
    with pytest.raises(InputError) as refused:
        refuse_old_keys(config)
    assert str(refused.value).startswith(message) and "\n" not in str(refused.value)


def test_current_config_keys_pass():
    refuse_old_keys({"select": "none", "evaluation": {"enabled": True}, "styles": {"02": {"select": "hist"}}})
