"""`jstyleid evaluate`: the challenge's scores of a run's pictures, per style and setting.

For each style, each setting (the content images, the StyleID outputs, every sweep setting) is
scored against the style's reference images with the parts of jstyleid.evaluation; parts whose
weights are not on this machine are reported unavailable (with the reason) and the final score then
stays empty. OUT (scores.json) holds every number, the weights and the library versions used.

The manifest (a JSON file, written by the workflow's evaluate rule):
    {"styles": [{"name": "01", "refs": [image, ...],
                 "settings": [{"label": "content" | "styleid" | <sweep folder>, "outputs": folder,
                               "images": [image per prompt]}, ...]}, ...]}
With --store DIR each picture's per-part values are kept (evaluation/stored.py): a rerun scores only
the pictures it has not seen. Or, to score a folder in the challenge's layout exactly as its scorer does, --upload SUB --gt B:
every file of SUB/XX/ against every file of B/XX/images/, for each XX in SUB.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import InputError
from ..storage.store import add_store_argument

log = logging.getLogger(__name__)
COMMAND = "evaluate"
HELP = "score pictures as the Jittor challenge does (Hist, DINO, LPIPS, FID, CLIP-IQA, CLIP-R, final)"


def add_arguments(parser):
    from ..evaluation import DEFAULT_WEIGHTS
    from ..evaluation.clip_iqa import SCALINGS
    from ..evaluation.score import PARTS

    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--manifest", help="JSON file: styles, their references and settings (see the module doc)")
    source.add_argument("--upload", help="a submission folder SUB/XX/*.png (with --gt)")
    parser.add_argument("--gt", help="the styles folder of the challenge layout, B/XX/images/* (with --upload)")
    parser.add_argument("--out", required=True, help="scores.json to write")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="parts to compute (default all)")
    parser.add_argument("--dino", default=DEFAULT_WEIGHTS["dino"], help="DINOv2 folder or cached hub id")
    parser.add_argument("--clip", default=DEFAULT_WEIGHTS["clip"], help="CLIP (CLIP-R) folder or cached hub id")
    parser.add_argument("--clip-iqa", default=DEFAULT_WEIGHTS["clip_iqa"],
                        help="clip_iqa (piq's model, the challenge's) or a CLIP folder / cached hub id")
    parser.add_argument("--clip-iqa-scaling", choices=SCALINGS, default=DEFAULT_WEIGHTS["clip_iqa_scaling"],
                        help="correct pixel range, or the challenge scorer's 0-255 floats")
    parser.add_argument("--torch-hub", default=DEFAULT_WEIGHTS["torch_hub"],
                        help="torch hub folder holding checkpoints/ (SqueezeNet, Inception); default torch's own")
    parser.add_argument("--clip-r-words", default="",
                        help="extra CLIP-R candidate texts: a file, one a line (the challenge's clip_r_prompts.txt), "
                             "or a styles folder XX/prompt.json (its prompts)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    add_store_argument(parser)


def run(args):
    from ..engines.devices import resolve_device
    from ..evaluation import available_metrics, library_versions, numbers_line, score_styles
    from ..storage.fileio import write_json

    styles = _styles_from_manifest(args.manifest) if args.manifest else _styles_from_upload(args.upload, args.gt)
    options = dict(dino=args.dino, clip=args.clip, clip_iqa=args.clip_iqa, torch_hub=args.torch_hub,
                   clip_iqa_scaling=args.clip_iqa_scaling)
    metrics, status = available_metrics(args.parts, options)
    for part, state in status.items():
        log.info("%s: %s", part, state.get("weights") or f"unavailable ({state['reason']})")
    device = resolve_device(args.device) if set(metrics) - {"hist"} else "cpu"
    per_style, overall = score_styles(styles, metrics, device, args.clip_r_words, args.store)
    write_json(args.out, dict(numbers=numbers_line(options, args.clip_r_words), versions=library_versions(), device=device,
                              metrics=status,
                              options={**options, "clip_r_words": args.clip_r_words},
                              settings=list(overall), styles=per_style, overall=overall))


def _styles_from_manifest(path):
    from ..storage.fileio import read_manifest

    manifest = read_manifest(path, "evaluation")
    try:
        styles = manifest["styles"]
        shaped = all({"name", "refs", "settings"} <= set(style) and
                     all({"label", "outputs", "images"} <= set(x) for x in style["settings"]) for style in styles)
    except (KeyError, TypeError) as err:
        raise InputError(path, f"not an evaluation manifest ({err!r})") from None
    if not shaped:
        raise InputError(path, "every style needs name, refs and settings (label, outputs, images)")
    for style in styles:
        if not style["refs"]:
            raise InputError(path, f"style {style['name']} has no reference images")
        for path in style["refs"] + [p for s in style["settings"] for p in s["images"]]:
            if not Path(path).is_file():
                raise InputError(path, "image listed in the evaluation manifest does not exist")
    return styles


def _styles_from_upload(upload, gt):
    if not gt:
        raise InputError("--gt", "--upload needs --gt, the styles folder with XX/images/")
    folders = sorted(p for p in Path(upload).iterdir() if p.is_dir()) if Path(upload).is_dir() else []
    if not folders:
        raise InputError(upload, "no style folders XX/ to evaluate")
    styles = []
    for folder in folders:
        refs = Path(gt, folder.name, "images")
        if not refs.is_dir() or not any(refs.iterdir()):
            raise InputError(refs, f"no reference images for style {folder.name}")
        styles.append(dict(name=folder.name, refs=sorted(map(str, refs.iterdir())),
                           settings=[dict(label="submission", outputs=str(folder),
                                          images=sorted(str(p) for p in folder.iterdir() if p.is_file()))]))
    return styles
