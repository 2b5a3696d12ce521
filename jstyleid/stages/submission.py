"""`jstyleid submission`: the stylised images in the challenge layout (jstyleid/pipelines/submission.py)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .options import add_renamed_argument

COMMAND = "submission"
HELP = "copy the stylised images into the challenge's submission layout, with a mapping JSON"


def add_arguments(parser):
    parser.add_argument("--prompts", nargs="+", required=True, help="XX/prompt.json of each style")
    add_renamed_argument(parser, "--image-dirs", "--images", required=True, nargs="+",
                         help="one folder per prompt file, holding {prompt}.png for each of its prompts")
    add_renamed_argument(parser, "--out-dir", "--out", required=True,
                         help="submission folder: OUT/XX/{prompt}.png, OUT/mapping.json")
    parser.add_argument("--scores", help="scores.json of `jstyleid evaluate`, for --select")
    parser.add_argument("--select", nargs="+", metavar="SCORE",
                        help="per prompt file: the score choosing its setting (final, hist, ...), or none")
    parser.add_argument("--select-per", nargs="+", choices=("style", "prompt"), metavar="style|prompt",
                        help="per prompt file: choose one setting for the style (default), or one per prompt")


def run(args):
    from ..pipelines.submission import write_submission

    if len(args.image_dirs) != len(args.prompts):
        raise InputError("--image-dirs", f"{len(args.image_dirs)} folders for {len(args.prompts)} prompt files")
    write_submission(args.prompts, args.image_dirs, args.out_dir, args.select or [None] * len(args.prompts), _selector(args),
                     [per == "prompt" for per in args.select_per] if args.select_per else None)


def _selector(args):
    """choose(metric, style, per_prompt) over the scores file, after checking the options agree."""
    import json

    from ..evaluation.select import choose, choose_per_prompt

    if args.select_per is not None:
        if len(args.select_per) != len(args.prompts):
            raise InputError("--select-per", f"{len(args.select_per)} values for {len(args.prompts)} prompt files")
        for prompt_file, per, metric in zip(args.prompts, args.select_per, args.select or ["none"] * len(args.prompts)):
            if per == "prompt" and metric == "none":
                raise InputError("--select-per", f"prompt for {prompt_file} needs a --select score other than none")
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
    return lambda metric, style, per_prompt: (choose_per_prompt if per_prompt else choose)(
        scores, metric, style, where=args.scores)
