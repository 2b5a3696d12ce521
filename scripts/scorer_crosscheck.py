"""Cross-check `jstyleid evaluate` against the challenge's scorer (jdiff_checker), run unmodified.

Both sides load the same seeded random networks of the scorer's classes, saved where both loaders
look (a Hugging Face cache, a torch hub folder, piq's ~/.cache/clip under a private HOME), and score
the same generated picture sets (15 styles, as the scorer expects; RGB, RGBA, grey and palette
files at 512 and 768 px). Steps, each writing JSON under DIR (docs/evaluation-crosscheck.md has the
commands, the two environments and the numbers):

    SCORER_PY scripts/scorer_crosscheck.py make     DIR CHECKER   # weights and picture sets
    SCORER_PY scripts/scorer_crosscheck.py scorer   DIR CHECKER   # the scorer's numbers
    .venv/bin/python scripts/scorer_crosscheck.py jstyleid DIR CHECKER
    .venv/bin/python scripts/scorer_crosscheck.py table    DIR         # markdown table

CHECKER is a checkout of the scorer's folder (jdiff_checker/ and clip_r_prompts.txt beside it);
nothing of it is copied here. The scorer runs on CUDA only (`.to("cuda")`); on a machine without a
GPU the `scorer` step maps "cuda" to the CPU in torch's `.to`, outside the scorer's files.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

STYLES, GENERATED, REFERENCES = 15, 1, 2  # the scorer reads styles 00 to 14
MODES, SIZES = ("RGB", "RGBA", "L", "P"), (512, 768)
PARTS = ("hist", "dino", "lpips", "fid", "clip_iqa", "clip_r", "final")
SCORER_KEYS = dict(hist="hist_score", dino="dino_score", lpips="lpip_score", fid="fid_score",
                   clip_iqa="clip_iqa_score", clip_r="clip_r_score")
# The parts the scorer computes on each kind of file (it fails on the others: the table says how)
COMPARABLE = dict(RGB=PARTS, RGBA=("hist", "dino", "lpips", "clip_r"), L=("hist", "dino", "clip_iqa", "clip_r"),
                  P=("hist", "dino", "clip_iqa", "clip_r"))
COMMIT = "0" * 40


def environment(root: Path):
    """Where every loader looks, inside DIR; set before torch or huggingface_hub is imported."""
    os.environ.update(HF_HUB_CACHE=str(root / "hf"), HF_HUB_OFFLINE="1", TORCH_HOME=str(root / "torch"),
                      HOME=str(root / "home"))


def snapshot(root: Path, hub_id: str) -> Path:
    repo = root / "hf" / ("models--" + hub_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return repo / "snapshots" / COMMIT


def fingerprint(module) -> str:
    """sha256 of the module's parameters as a multiset (names and order differ between versions)."""
    digests = sorted(hashlib.sha256(p.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()
                     for p in module.parameters())
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:16]


def make(root: Path, checker: Path):
    """Seeded random networks of the scorer's classes and the picture sets."""
    import numpy as np
    import torch
    import torch_fidelity.feature_extractor_inceptionv3 as tf_inception
    import torchvision
    from piq.feature_extractors import clip
    from PIL import Image
    from transformers import (BitImageProcessor, CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor,
                              CLIPTokenizer, Dinov2Config, Dinov2Model)
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    # a byte-level CLIP BPE without merges: every text tokenizes, letter by letter, none to <unk>
    tokens = root / "tokenizer"
    tokens.mkdir(parents=True, exist_ok=True)
    base = list(bytes_to_unicode().values())
    vocab = base + [c + "</w>" for c in base] + ["<|startoftext|>", "<|endoftext|>"]
    (tokens / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (tokens / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(tokens / "vocab.json", tokens / "merges.txt", model_max_length=77)

    torch.manual_seed(0)
    dino = snapshot(root, "facebook/dinov2-base")
    Dinov2Model(Dinov2Config(hidden_size=48, num_hidden_layers=2, num_attention_heads=2, intermediate_size=96,
                             image_size=224, patch_size=14)).save_pretrained(dino)
    BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(dino)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer)  # CLIP's own settings
    # CLIP pools the text at its end token: the ids of this vocabulary's, or every text would pool token 0
    config = CLIPConfig(text_config=dict(vocab_size=len(vocab), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                         bos_token_id=len(vocab) - 2, eos_token_id=len(vocab) - 1,
                                         pad_token_id=len(vocab) - 1),
                        vision_config=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                           num_attention_heads=2, image_size=224, patch_size=14),
                        projection_dim=32)
    large = snapshot(root, "openai/clip-vit-large-patch14")
    CLIPModel(config).save_pretrained(large)
    processor.save_pretrained(large)
    base16 = snapshot(root, "openai/clip-vit-base-patch16")  # torchmetrics' tokenizer for piq's CLIP-IQA
    processor.save_pretrained(base16)
    config.save_pretrained(base16)

    piq_clip = clip.CLIP(embed_dim=1024, image_resolution=64, vision_layers=(1, 1, 1, 1), vision_width=64,
                         vision_patch_size=None, context_length=77, vocab_size=len(vocab), transformer_width=64,
                         transformer_heads=1, transformer_layers=1).eval()
    (root / "home" / ".cache" / "clip").mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        example = (torch.rand(1, 3, 64, 64), torch.zeros(1, 77, dtype=torch.long))
        torch.jit.save(torch.jit.trace(piq_clip, example, check_trace=False), root / "home/.cache/clip/RN50.pt")

    checkpoints = root / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.squeezenet1_1(weights=None).state_dict(), checkpoints / "squeezenet1_1-b8a52dc0.pth")
    tf_inception.load_state_dict_from_url = lambda *a, **k: {}  # build the class without its real weights
    load = tf_inception.FeatureExtractorInceptionV3.load_state_dict
    tf_inception.FeatureExtractorInceptionV3.load_state_dict = lambda *a, **k: None
    inception = tf_inception.FeatureExtractorInceptionV3("inception-v3-compat", ["64"])
    tf_inception.FeatureExtractorInceptionV3.load_state_dict = load
    torch.save(inception.state_dict(), checkpoints / "weights-inception-2015-12-05-6726825d.pth")

    # picture sets: smooth random colours (bicubic-enlarged noise), alpha likewise for RGBA
    words = [w.strip() for w in (checker / "clip_r_prompts.txt").read_text().splitlines() if w.strip()]
    rng = np.random.default_rng(0)

    def picture(size, mode):
        rgba = rng.integers(0, 256, (size // 32, size // 32, 4), dtype=np.uint8)
        image = Image.fromarray(rgba, "RGBA").resize((size, size), Image.BICUBIC)
        return image if mode == "RGBA" else image.convert("RGB").convert(mode)

    for name in set_names():
        mode, size = name.rstrip("0123456789"), int(name.lstrip("RGBALP"))
        folder = root / "sets" / name
        for s in range(STYLES):
            (folder / "upload" / f"{s:02d}").mkdir(parents=True, exist_ok=True)
            (folder / "gt" / f"{s:02d}" / "images").mkdir(parents=True, exist_ok=True)
            for i in range(GENERATED):
                picture(size, mode).save(folder / "upload" / f"{s:02d}" / f"{words[s * GENERATED + i]}.png")
            for i in range(REFERENCES):
                picture(size, mode).save(folder / "gt" / f"{s:02d}" / "images" / f"{i}.png")
    print("made", root)


def set_names():
    return [f"{mode}{size}" for size in SIZES for mode in MODES]


def cuda_to_cpu():
    """torch's .to() with "cuda" sends to the CPU: the scorer's files ask for CUDA throughout."""
    import torch

    def cpu(value):
        return "cpu" if (isinstance(value, str) and value.startswith("cuda")) or \
            (isinstance(value, torch.device) and value.type == "cuda") else value

    for cls in (torch.Tensor, torch.nn.Module):
        original = cls.to

        def to(self, *args, _original=original, **kwargs):
            if "device" in kwargs:
                kwargs["device"] = cpu(kwargs["device"])
            return _original(self, *(cpu(a) for a in args), **kwargs)

        cls.to = to


def scorer(root: Path, checker: Path):
    """The scorer's get_score on each set; where it fails, each of its parts alone (with the error)."""
    import torch
    import torchmetrics.functional.image.lpips as tm_lpips
    import torchmetrics.image.fid as tm_fid

    if not torch.cuda.is_available():
        cuda_to_cpu()
    prints = {}

    class Fid(tm_fid.FrechetInceptionDistance):  # records the networks the scorer builds inside calls
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            prints["fid"] = fingerprint(self.inception)

    tm_fid.FrechetInceptionDistance = Fid
    lpips_forward = tm_lpips._NoTrainLpips.forward  # (not __init__: it finds its weights by its own file)

    def recorded(self, *args, **kwargs):
        prints["lpips"] = fingerprint(self)
        return lpips_forward(self, *args, **kwargs)

    tm_lpips._NoTrainLpips.forward = recorded
    os.chdir(checker / "jdiff_checker")  # it reads ../clip_r_prompts.txt
    sys.path.insert(0, str(checker / "jdiff_checker"))
    import clip_iqa_api
    import clip_r_api
    import dino_api
    import score_api

    prints.update(dino=fingerprint(dino_api.model), clip_r=fingerprint(clip_r_api.model),
                  clip_iqa=fingerprint(clip_iqa_api.metric.model))
    results = {}
    for name in set_names():
        upload, gt = f"{root / 'sets' / name / 'upload'}/", f"{root / 'sets' / name / 'gt'}/"
        values, errors = {}, {}
        upload_paths = {f"{s:02d}": os.path.join(upload, f"{s:02d}") for s in range(STYLES)}
        gt_paths = {f"{s:02d}": os.path.join(gt, f"{s:02d}", "images") for s in range(STYLES)}
        calls = dict(hist=lambda: score_api.get_hist_scores(upload_paths, gt_paths)[0]["total"],
                     dino=lambda: score_api.get_dino_scores(upload_paths, gt_paths)[0]["total"],
                     lpips=lambda: score_api.get_lpips_score(upload_paths, gt_paths)["total"],
                     fid=lambda: score_api.get_fid_scores(upload_paths, gt_paths),
                     clip_iqa=lambda: score_api.get_clip_iqa_score(upload_paths)[0]["total"],
                     clip_r=lambda: score_api.get_clip_r_score(upload_paths)[0])
        try:  # the whole scorer: its final score and result.json's parts
            values["final"] = score_api.get_score(upload, gt, str(root / "scorer-result" / name))["final_score"]
            saved = json.loads((root / "scorer-result" / name / "result.json").read_text())
            values.update({part: float(saved[key]) for part, key in SCORER_KEYS.items()})
        except Exception as err:  # get_score stops at its first failing part: each part alone
            errors["final"] = f"get_score fails: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
            for part, call in calls.items():
                try:
                    values[part] = float(call())
                except Exception as part_err:
                    errors[part] = f"{type(part_err).__name__}: {str(part_err).splitlines()[0][:160]}"
        results[name] = dict(values=values, errors=errors)
        print(name, values, errors, flush=True)
    write(root / "scorer.json", dict(fingerprints=prints, versions=versions(), sets=results))


def jstyleid(root: Path, checker: Path):
    """jstyleid's evaluation of each set as `jstyleid evaluate --upload --gt --clip-iqa-scaling challenge
    --clip-r-words clip_r_prompts.txt --device cpu` runs it, with the loaded networks fingerprinted."""
    from jstyleid.stages.evaluate import _styles_from_upload
    from jstyleid.evaluation import available_metrics, score_styles
    from jstyleid.evaluation.score import PARTS as ALL

    metrics, status = available_metrics(ALL, dict(clip_iqa_scaling="challenge"))
    missing = {p: s["reason"] for p, s in status.items() if s["status"] != "ok"}
    if missing:
        sys.exit(f"weights not found: {missing}")
    results = {}
    for name in set_names():
        styles = _styles_from_upload(root / "sets" / name / "upload", root / "sets" / name / "gt")
        scored = {p: m for p, m in metrics.items() if p in COMPARABLE[name.rstrip("0123456789")]}
        _, overall = score_styles(styles, scored, "cpu", str(checker / "clip_r_prompts.txt"))
        results[name] = dict(values={p: overall["submission"].get(p) for p in PARTS}, errors={})
        print(name, results[name]["values"], flush=True)
    prints = dict(dino=fingerprint(metrics["dino"].model), clip_r=fingerprint(metrics["clip_r"].model),
                  clip_iqa=fingerprint(metrics["clip_iqa"].metric.model), fid=fingerprint(metrics["fid"].metric.inception),
                  lpips=fingerprint(metrics["lpips"].metric.net))
    write(root / "jstyleid.json", dict(fingerprints=prints, versions=versions(), sets=results))


def table(root: Path):
    theirs, ours = (json.loads((root / f"{side}.json").read_text()) for side in ("scorer", "jstyleid"))
    lines = ["| part | networks (scorer / jstyleid) |", "| --- | --- |"]
    lines += [f"| {p} | {theirs['fingerprints'][p]} / {ours['fingerprints'][p]}"
              f"{'' if theirs['fingerprints'][p] == ours['fingerprints'][p] else ' DIFFERENT'} |"
              for p in sorted(theirs["fingerprints"])]
    lines += ["", "| set | part | scorer | jstyleid | relative difference |", "| --- | --- | --- | --- | --- |"]
    for name in (n for n in set_names() if n in theirs["sets"] and n in ours["sets"]):  # those both scored
        result = theirs["sets"][name]
        for part in PARTS:
            mine = ours["sets"][name]["values"].get(part)
            if part in result["values"]:
                value = result["values"][part]
                diff = abs(mine - value) / max(abs(value), 1e-300) if mine is not None else None
                lines.append(f"| {name} | {part} | {value:.10g} | {_g(mine)} | {_g(diff, '.2e')} |")
            else:
                lines.append(f"| {name} | {part} | fails: {result['errors'][part]} | {_g(mine)} | |")
    lines += ["", "scorer: " + json.dumps(theirs["versions"]), "", "jstyleid: " + json.dumps(ours["versions"])]
    print("\n".join(lines))


def _g(value, spec=".10g"):
    return "-" if value is None else format(value, spec)


def versions():
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("torch", "torchvision", "torchmetrics", "torch-fidelity", "transformers", "pillow", "numpy", "piq",
                 "opencv-python", "opencv-python-headless"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def write(path: Path, data):
    path.write_text(json.dumps(data, indent=1))
    print("wrote", path)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in ("make", "scorer", "jstyleid", "table"):
        sys.exit(__doc__)
    step, root = sys.argv[1], Path(sys.argv[2]).resolve()
    if step == "table":
        table(root)
        sys.exit()
    if len(sys.argv) != 4 or not (Path(sys.argv[3]) / "jdiff_checker" / "score_api.py").is_file():
        sys.exit(f"{step}: CHECKER must be the scorer's folder holding jdiff_checker/score_api.py")
    environment(root)
    dict(make=make, scorer=scorer, jstyleid=jstyleid)[step](root, Path(sys.argv[3]).resolve())
