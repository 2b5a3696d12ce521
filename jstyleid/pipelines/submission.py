"""The submission: stylised images in the challenge layout, OUT/XX/{prompt}.png.

File names keep each prompt as written in XX/prompt.json, changed only where a file system
forbids a character (jstyleid.storage.inputs.safe_filename); OUT/mapping.json records, per style, every
prompt's key, text and file. With --scores and --select (one score per prompt file, or "none"),
a style's images come from its StyleID setting with the best value of that score in scores.json
(jstyleid.evaluation.select), and mapping.json's "selection" says per style which setting won, its
value, the runner-up and the margin. With --select-per prompt for a style, each of its prompts comes
from the setting that scores best on that prompt (jstyleid.evaluation.select.choose_per_prompt), and
its "selection" entry names, per prompt file name, that setting and its value, and counts the prompts
each setting won.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def write_submission(prompt_files, folders, out, metrics, choose, per_prompt=None) -> None:
    """OUT/XX/{prompt}.png from folders[i] (or, where metrics[i] names a score, from the setting `choose`
    picks; where per_prompt[i], from the setting `per_prompt` picks for each prompt), and OUT/mapping.json."""
    import shutil

    from ..storage.fileio import atomic_path, write_json
    from ..storage.inputs import read_prompts, safe_filename

    copies, mapping, selection = [], {}, {}
    for prompt_file, folder, metric, by_prompt in zip(prompt_files, folders, metrics, per_prompt or [False] * len(folders)):
        style = Path(prompt_file).parent.name
        if style in mapping or style == "selection":
            raise InputError(prompt_file, f"style {style} is given twice" if style in mapping
                             else "a style may not be called 'selection' (mapping.json uses the key)")
        winners = {}
        if metric not in (None, "none"):
            selection[style] = choose(metric, style, by_prompt)
            if by_prompt:
                winners = {name: won.pop("outputs") for name, won in selection[style]["prompts"].items()}
            else:
                folder = selection[style]["outputs"]
        mapping[style] = []
        for key, prompt in read_prompts(prompt_file).items():
            stem = safe_filename(prompt)
            name = f"{stem}.png"
            if by_prompt and stem not in winners:
                raise InputError(prompt_file, f"select_per prompt: no candidate has a per-image score for prompt {prompt!r}")
            source = Path(winners.get(stem, folder), name)
            if not source.is_file():
                raise InputError(source, f"no stylised image for prompt {prompt!r}")
            copies.append((source, Path(out, style, name)))
            mapping[style].append({"key": key, "prompt": prompt, "file": f"{style}/{name}"})
    for source, target in copies:
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    write_json(Path(out, "mapping.json"), {**mapping, "selection": selection} if selection else mapping)
