"""`jstyleid submission`: the stylised images in the challenge layout, OUT/XX/{prompt}.png.

File names keep each prompt as written in XX/prompt.json, changed only where a file system
forbids a character (jstyleid.inputs.safe_filename); OUT/mapping.json records, per style, every
prompt's key, text and file.
"""

from __future__ import annotations

from pathlib import Path

from .errors import InputError

COMMAND = "submission"
HELP = "copy the stylised images into the challenge's submission layout, with a mapping JSON"


def add_arguments(parser):
    parser.add_argument("--prompts", nargs="+", required=True, help="XX/prompt.json of each style")
    parser.add_argument("--images", nargs="+", required=True,
                        help="one folder per prompt file, holding {prompt}.png for each of its prompts")
    parser.add_argument("--out", required=True, help="submission folder: OUT/XX/{prompt}.png, OUT/mapping.json")


def run(args):
    import shutil

    from .fileio import atomic_path, write_json
    from .inputs import read_prompts, safe_filename

    if len(args.images) != len(args.prompts):
        raise InputError("--images", f"{len(args.images)} folders for {len(args.prompts)} prompt files")
    copies, mapping = [], {}
    for prompt_file, folder in zip(args.prompts, args.images):
        style = Path(prompt_file).parent.name
        if style in mapping:
            raise InputError(prompt_file, f"style {style} is given twice")
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
    write_json(Path(args.out, "mapping.json"), mapping)
