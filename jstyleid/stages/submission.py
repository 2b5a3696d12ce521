"""`jstyleid submission`: the stylised images in the challenge layout, OUT/XX/{prompt}.png.

File names keep each prompt as written in XX/prompt.json, changed only where a file system
forbids a character (jstyleid.inputs.safe_filename); OUT/mapping.json records, per style, every
prompt's key, text and file. With --scores and --select (one score per prompt file, or "none"),
a style's images come from its StyleID setting with the best value of that score in scores.json
(jstyleid.evaluation.select), and mapping.json's "selection" says per style which setting won, its
value, the runner-up and the margin.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError

COMMAND = "submission"
HELP = "copy the stylised images into the challenge's submission layout, with a mapping JSON"


def add_arguments(parser):
    parser.add_argument("--prompts", nargs="+", required=True, help="XX/prompt.json of each style")
    parser.add_argument("--images", nargs="+", required=True,
                        help="one folder per prompt file, holding {prompt}.png for each of its prompts")
    parser.add_argument("--out", required=True, help="submission folder: OUT/XX/{prompt}.png, OUT/mapping.json")
    parser.add_argument("--scores", help="scores.json of `jstyleid evaluate`, for --select")
    parser.add_argument("--select", nargs="+", metavar="SCORE",
                        help="per prompt file: the score choosing its setting (final, hist, ...), or none")


def run(args):
    import shutil

    from ..storage.fileio import atomic_path, write_json
    from ..storage.inputs import read_prompts, safe_filename

    if len(args.images) != len(args.prompts):
        raise InputError("--images", f"{len(args.images)} folders for {len(args.prompts)} prompt files")
    choose = _selector(args)
    copies, mapping, selection = [], {}, {}
    for prompt_file, folder, metric in zip(args.prompts, args.images, args.select or [None] * len(args.prompts)):
        style = Path(prompt_file).parent.name
        if style in mapping or style == "selection":
            raise InputError(prompt_file, f"style {style} is given twice" if style in mapping
                             else "a style may not be called 'selection' (mapping.json uses the key)")
        if metric not in (None, "none"):
            selection[style] = choose(metric, style)
            folder = selection[style]["outputs"]
        mapping[style] = []
        for key, prompt in read_prompts(prompt_file).items():
            name = f"{safe_filename(prompt)}.png"
            source = Path(folder, name)
            if not source.is_file():
                raise InputError(source, f"no stylised image for prompt {prompt!r}")
            copies.append((source, Path(args.out, style, name)))
            mapping[style].append({"key": key, "prompt": prompt, "file": f"{style}/{name}"})
    for source, target in copies:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    write_json(Path(args.out, "mapping.json"), {**mapping, "selection": selection} if selection else mapping)


def _selector(args):
    """choose(metric, style) over the scores file, after checking the options agree."""
    import json

    from ..evaluation.select import choose

    if args.select is None:
        return None
    if len(args.select) != len(args.prompts):
        raise InputError("--select", f"{len(args.select)} scores for {len(args.prompts)} prompt files")
    if not args.scores:
        raise InputError("--select", "needs --scores, the scores.json of jstyleid evaluate")
    try:
        scores = json.loads(Path(args.scores).read_text(encoding="utf-8"))
        if not {"metrics", "styles"} <= set(scores):
            raise KeyError("metrics, styles")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise InputError(args.scores, f"not a scores file of jstyleid evaluate ({err!r})") from None
    return lambda metric, style: choose(scores, metric, style, where=args.scores)
